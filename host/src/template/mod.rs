//! `${SECRET:…}` templates: configuration text that references secrets
//! instead of embedding them. The grammar is in docs/templates.md.

mod parse;

pub use parse::{parse, Template, TemplateError, MAX_PLACEHOLDERS, MAX_TEMPLATE_LEN};

use zeroize::Zeroizing;

use crate::audit::{Access, Action};
use crate::resolve::Context;
use crate::vault::{Vault, VaultError};

/// Why a template did not render.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The text breaks the grammar (nothing was looked up). (422)
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Lookup failed; [`VaultError::Missing`] names every missing secret.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// Renders `text`: every placeholder is revealed (and logged with `access`)
/// in one group, then substituted. Any missing secret fails the whole render;
/// partial text is never produced.
pub async fn render(
    vault: &Vault,
    text: &str,
    ctx: &Context,
    access: &Access,
) -> Result<Zeroizing<Vec<u8>>, RenderError> {
    let template = parse(text)?;
    if template.refs().is_empty() {
        return Ok(template.render(&[]));
    }
    let values = vault
        .reveal_all(template.refs(), ctx, access, Action::Render)
        .await?;
    Ok(template.render(&values))
}

/// [`render`] for a caller held to `limit` (a token's policy): references
/// it may not read are denied and logged, and nothing is rendered.
pub async fn render_within(
    vault: &Vault,
    text: &str,
    ctx: &Context,
    access: &Access,
    limit: &dyn crate::vault::Limit,
) -> Result<Zeroizing<Vec<u8>>, RenderError> {
    let template = parse(text)?;
    if template.refs().is_empty() {
        return Ok(template.render(&[]));
    }
    let values = vault
        .reveal_all_within(template.refs(), ctx, access, Action::Render, limit)
        .await?;
    Ok(template.render(&values))
}

/// Renders several templates with one lookup: every placeholder of every
/// template is revealed (and logged) in one group, held to `limit` when
/// there is one, so a missing or refused secret anywhere fails them all
/// and every missing one is named. The texts come back in order.
pub async fn render_many(
    vault: &Vault,
    texts: &[&str],
    ctx: &Context,
    access: &Access,
    limit: Option<&dyn crate::vault::Limit>,
) -> Result<Vec<Zeroizing<Vec<u8>>>, RenderError> {
    let templates = texts
        .iter()
        .map(|text| parse(text))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<_> = templates
        .iter()
        .flat_map(|t| t.refs().iter().cloned())
        .collect();
    let values = match (refs.is_empty(), limit) {
        (true, _) => Vec::new(),
        (false, None) => vault.reveal_all(&refs, ctx, access, Action::Render).await?,
        (false, Some(limit)) => {
            vault
                .reveal_all_within(&refs, ctx, access, Action::Render, limit)
                .await?
        }
    };
    let mut offset = 0;
    Ok(templates
        .iter()
        .map(|template| {
            let n = template.refs().len();
            offset += n;
            template.render(&values[offset - n..offset])
        })
        .collect())
}
