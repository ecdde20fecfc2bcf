//! Who is using the desk: the logged-in staff member that every page is
//! rendered for (made by the session extractor in `session`).

use super::i18n::Lang;
use super::store::User;

/// The form field (and header) carrying the session's CSRF token.
pub const CSRF_FIELD: &str = "_csrf";

/// A logged-in staff member, with the page language.
#[derive(Debug, Clone)]
pub struct Staff {
    pub user: User,
    pub csrf: String,
    pub lang: Lang,
}
