// {{name}}: a Keyward migrator (world `migrator`) in JavaScript, componentized
// with componentize-js.
//
// Reads a legacy store over HTTP: run it with
// `keyward migrate plan|run {{name}} --source URL`, where URL answers a JSON
// object `{"NAME": "value", ...}`. Each NAME becomes the secret
// `<scope>/NAME` (option `scope`, default `global`). The run grants the
// URL's origin for that run only; every call is a fresh instance, so each
// call fetches again. `retire` removes nothing here: a store you can delete
// from would do it there, idempotently (a unit already gone answers ok).
//
// How the WIT maps to JavaScript: the exported interface `migration` is the
// object `migration` below, functions in camelCase; records are objects
// with camelCase fields, a variant is `{ tag, val }`, `option<T>` a value or
// `undefined`, `list<u8>` a Uint8Array. A function returning `result<T, E>`
// returns T or throws E; `read` and `retire` return one
// `{ tag: 'ok', val }` or `{ tag: 'err', val: reason }` per id. An import
// that fails throws an Error whose `payload` is the host's `error`.

import { fetch } from 'keyward:plugin/outbound@0.1.0';

const NAME = '{{name}}';
const MAX_VALUE = 64 * 1024;
const SECRET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const SCOPE = /^(global|[a-z][a-z0-9_]{0,31}:[A-Za-z0-9][A-Za-z0-9_.-]{0,127})$/;

const invalid = (message) => ({ tag: 'invalid', val: message });
const quoted = (text) => (SECRET_NAME.test(text) ? text : JSON.stringify(text.slice(0, 64)));

function scope(run) {
  let value = 'global';
  for (const [key, v] of run.options) if (key === 'scope') value = v;
  if (!SCOPE.test(value)) throw invalid(`option scope=${quoted(value)}: not a scope (global or KIND:ID)`);
  return value;
}

// The store's JSON object, or a thrown `error`.
function load(run) {
  if (run.source === undefined || !/^https?:\/\//.test(run.source)) {
    throw invalid(`${NAME} reads a JSON object over HTTP: give its URL with --source URL`);
  }
  let response;
  try {
    response = fetch({ method: 'GET', url: run.source, headers: [['accept', 'application/json']], body: undefined });
  } catch (e) {
    throw e.payload ?? invalid(String(e));
  }
  if (response.status !== 200) throw { tag: 'upstream', val: `${run.source} answered ${response.status}` };
  let store;
  try {
    store = JSON.parse(new TextDecoder().decode(response.body));
  } catch (e) {
    throw { tag: 'upstream', val: `${run.source}: not JSON (${e.name})` };
  }
  if (store === null || typeof store !== 'object' || Array.isArray(store)) {
    throw { tag: 'upstream', val: `${run.source}: not a JSON object of NAME: value` };
  }
  return store;
}

export const migration = {
  info() {
    return { name: NAME, description: 'A JSON object over HTTP: NAME → <scope>/NAME' };
  },

  discover(run) {
    const target = scope(run);
    const store = load(run);
    const items = [];
    const problems = [];
    for (const name of Object.keys(store).sort()) {
      const value = store[name];
      if (!SECRET_NAME.test(name)) {
        problems.push({ id: name.slice(0, 128), reason: `${quoted(name)}: not a secret name` });
      } else if (typeof value !== 'string' || value.length === 0) {
        problems.push({ id: name, reason: `${name}: not a non-empty string` });
      } else {
        items.push({
          id: name,
          target: `${target}/${name}`,
          description: `migrated from ${NAME}`,
          binding: { tag: 'none' },
          unit: name,
        });
      }
    }
    return { items, problems };
  },

  read(run, ids) {
    let store;
    try {
      store = load(run);
    } catch (e) {
      return ids.map(() => ({ tag: 'err', val: e.val ?? String(e) }));
    }
    return ids.map((id) => {
      const value = Object.hasOwn(store, id) ? store[id] : undefined;
      if (typeof value !== 'string' || value.length === 0) return { tag: 'err', val: `${quoted(id)}: no longer in the store` };
      const bytes = new TextEncoder().encode(value);
      if (bytes.length > MAX_VALUE) return { tag: 'err', val: `${id}: larger than ${MAX_VALUE} bytes` };
      return { tag: 'ok', val: bytes };
    });
  },

  retire(run, units) {
    return units.map(() => ({ tag: 'ok', val: undefined }));
  },

  planRenames(run, existing) {
    return []; // not an in-store move
  },
};
