//! The error contract between pure code and the SQL boundary.
//!
//! Pure modules define their own `thiserror` enums and implement [`SqlError`]
//! to say which SQLSTATE each variant maps to; `crate::pg::error` raises them as
//! `ereport(ERROR)`. Nothing here touches Postgres.

pub trait SqlError: std::fmt::Display {
    /// Five-character SQLSTATE, e.g. `"22P02"`.
    fn sqlstate(&self) -> &'static str;
    /// Optional DETAIL line.
    fn detail(&self) -> Option<String> {
        None
    }
    /// Optional HINT line.
    fn hint(&self) -> Option<String> {
        None
    }
}
