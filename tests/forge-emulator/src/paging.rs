//! Page windows and the absolute `Link` URLs each forge builds from them.

use std::ops::Range;

use serde_json::Value;

use crate::params::Params;
use crate::state::State;

/// One page of a list of `total` items.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub page: usize,
    pub per_page: usize,
    pub total: usize,
}

impl Window {
    /// Clamps the requested page and size the way Forgejo and GitHub do (garbage → defaults).
    pub fn lenient(
        page: Option<&str>,
        per_page: Option<&str>,
        default: usize,
        max: usize,
        total: usize,
    ) -> Window {
        let page = page
            .and_then(|p| p.parse::<usize>().ok())
            .filter(|&p| p > 0)
            .unwrap_or(1);
        let per_page = per_page
            .and_then(|p| p.parse::<usize>().ok())
            .filter(|&p| p > 0)
            .map_or(default, |p| p.min(max));
        Window {
            page,
            per_page,
            total,
        }
    }

    /// The last page number (1 for an empty list).
    pub fn last(&self) -> usize {
        self.total.div_ceil(self.per_page).max(1)
    }

    /// The item indexes on this page (empty past the end).
    pub fn range(&self) -> Range<usize> {
        let start = self
            .page
            .saturating_sub(1)
            .saturating_mul(self.per_page)
            .min(self.total);
        start..start.saturating_add(self.per_page).min(self.total)
    }

    /// The next page, if any.
    pub fn next(&self) -> Option<usize> {
        (self.page < self.last()).then(|| self.page + 1)
    }

    /// The previous page, if any.
    pub fn prev(&self) -> Option<usize> {
        (self.page > 1).then(|| (self.page - 1).min(self.last()))
    }
}

/// Builds `<url>; rel="…"` entries pointing at `base` + `path` with `page_key` replaced.
pub(crate) struct Linker<'a> {
    pub base: &'a str,
    pub path: &'a str,
    pub query: &'a Params,
    pub page_key: &'a str,
}

impl Linker<'_> {
    /// The absolute URL of page `n`.
    pub fn url(&self, n: usize) -> String {
        format!(
            "{}{}?{}",
            self.base,
            self.path,
            self.query.with(self.page_key, &n.to_string()).encode()
        )
    }

    /// A `Link` header value from `(rel, page)` pairs joined by `sep`.
    pub fn header(&self, rels: &[(&str, Option<usize>)], sep: &str) -> String {
        rels.iter()
            .filter_map(|(rel, page)| page.map(|n| format!("<{}>; rel=\"{rel}\"", self.url(n))))
            .collect::<Vec<_>>()
            .join(sep)
    }
}

/// A `Link` entry of a repository page.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rel {
    /// The previous page, from the second on.
    Prev,
    /// The next page, but on the last.
    Next,
    /// The last page, but on the last (Forgejo, GitHub).
    Last,
    /// The first page, from the second on (Forgejo, GitHub).
    First,
    /// The first page, on every page (GitLab).
    AlwaysFirst,
    /// The last page, on every page (GitLab).
    AlwaysLast,
}

impl Rel {
    /// The entry's `rel` and the page it points at on window `w`, if any.
    fn on(self, w: &Window) -> (&'static str, Option<usize>) {
        match self {
            Rel::Prev => ("prev", w.prev()),
            Rel::Next => ("next", w.next()),
            Rel::Last => ("last", w.next().map(|_| w.last())),
            Rel::First => ("first", w.prev().map(|_| 1)),
            Rel::AlwaysFirst => ("first", Some(1)),
            Rel::AlwaysLast => ("last", Some(w.last())),
        }
    }
}

/// How a forge lists a user's repositories, for [`Listing::page`]: the
/// list's path (which the `Link` URLs point at), one item (from the base
/// URL, the login, the owner's id and the index), the `Link` entries in the
/// forge's order and what goes between two of them.
pub(crate) struct Listing {
    path: &'static str,
    item: fn(&str, &str, u64, usize) -> Value,
    rels: &'static [Rel],
    separator: &'static str,
}

impl Listing {
    pub const fn new(
        path: &'static str,
        item: fn(&str, &str, u64, usize) -> Value,
        rels: &'static [Rel],
        separator: &'static str,
    ) -> Listing {
        Listing {
            path,
            item,
            rels,
            separator,
        }
    }

    /// The items of `login`'s repositories on window `w`, and the page's
    /// `Link` header (URLs of the query `q` with its `page` changed).
    pub fn page(&self, state: &State, login: &str, q: &Params, w: &Window) -> (Vec<Value>, String) {
        let owner_id = state.user_id(login);
        let items = w
            .range()
            .map(|i| (self.item)(&state.base, login, owner_id, i))
            .collect();
        let links = Linker {
            base: &state.base,
            path: self.path,
            query: q,
            page_key: "page",
        };
        let rels: Vec<_> = self.rels.iter().map(|r| r.on(w)).collect();
        (items, links.header(&rels, self.separator))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_clamp_and_end() {
        let w = Window::lenient(Some("x"), Some("1000"), 30, 50, 120);
        assert_eq!((w.page, w.per_page, w.last()), (1, 50, 3));
        let w = Window::lenient(Some("3"), None, 30, 50, 61);
        assert_eq!((w.range(), w.next(), w.prev()), (60..61, None, Some(2)));
        let w = Window::lenient(Some("99999999999999999999"), Some("0"), 30, 50, 5);
        assert_eq!((w.page, w.range()), (1, 0..5));
        let w = Window::lenient(Some(&usize::MAX.to_string()), Some("50"), 30, 50, 5);
        assert_eq!(w.range(), 5..5);
    }
}
