// {{name}}: a Keyward forge adapter (world `forge-adapter`) in JavaScript,
// componentized with componentize-js.
//
// The host calls `whoami` with the forge's base URL and a *reference* to the
// token: the adapter writes `${SECRET:<reference>}` into its request and the
// host expands it on the way out, so the token never enters the plugin. This
// skeleton speaks Forgejo's `GET /api/v1/user`; change the path and fields
// for your forge.
//
// How the WIT maps to JavaScript: the exported interface `forge` is the
// object `forge` below, its functions in camelCase; records are objects with
// camelCase fields, `option<T>` is a value or `undefined`, `list<u8>` a
// Uint8Array, a variant `{ tag, val }`. A function returning
// `result<T, E>` returns T or throws E; an import that fails throws an
// Error whose `payload` is the host's `error` variant.

import { fetch } from 'keyward:plugin/outbound@0.1.0';
import { emit } from 'keyward:plugin/log@0.1.0';

const KIND = '{{name}}';
const USER_PATH = '/api/v1/user';

const unsupported = (what) => ({ tag: 'unsupported', val: `${KIND}: ${what} is not supported` });

function statusError(status) {
  const message = `${KIND}: GET ${USER_PATH} answered ${status}`;
  switch (status) {
    case 401: return { tag: 'unauthorized', val: message };
    case 403: return { tag: 'forbidden', val: message };
    case 404: return { tag: 'not-found', val: message };
    case 429: return { tag: 'rate-limited', val: { retryAfter: undefined, message } };
    default: return { tag: 'upstream', val: message };
  }
}

export const forge = {
  // Must not call the host.
  info() {
    return { kind: KIND, displayName: KIND, defaultBaseUrl: 'https://forge.example' };
  },

  whoami(baseUrl, token) {
    let response;
    try {
      response = fetch({
        method: 'GET',
        url: baseUrl.replace(/\/+$/, '') + USER_PATH,
        headers: [
          ['accept', 'application/json'],
          ['authorization', 'token ${SECRET:' + token + '}'],
        ],
        body: undefined,
      });
    } catch (e) {
      const error = e.payload ?? { tag: 'invalid', val: String(e) };
      // A failed connection is `transport`; other host refusals pass on.
      throw error.tag === 'upstream' ? { tag: 'transport', val: error.val } : { tag: 'host', val: error };
    }
    if (response.status < 200 || response.status >= 300) throw statusError(response.status);
    let user;
    try {
      user = JSON.parse(new TextDecoder().decode(response.body));
    } catch (e) {
      throw { tag: 'upstream', val: `${KIND}: unreadable answer (${e.name})` };
    }
    if (user == null || user.id == null || typeof user.login !== 'string') {
      throw { tag: 'upstream', val: `${KIND}: the answer has no id and login` };
    }
    emit('info', `${KIND}: whoami: ${user.login}`);
    return {
      id: String(user.id),
      login: user.login,
      name: user.full_name || undefined,
      email: user.email || undefined,
      scopes: [],
      expiresAt: undefined,
    };
  },

  authorizeUrl() { throw unsupported('authorize-url'); },
  exchangeCode() { throw unsupported('exchange-code'); },
  refresh() { throw unsupported('refresh'); },
  listRepositories() { throw unsupported('list-repositories'); },
  revoke() { throw unsupported('revoke'); },
};
