//! Raising errors as `ereport(ERROR)` with a proper SQLSTATE.

use crate::error::SqlError;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgLogLevel;

/// Packs a five-character SQLSTATE the way `MAKE_SQLSTATE` does.
pub fn sqlstate_code(state: &str) -> PgSqlErrorCode {
    let bytes = state.as_bytes();
    assert_eq!(bytes.len(), 5, "SQLSTATE must have 5 characters: {state}");
    let code = bytes.iter().enumerate().fold(0i32, |acc, (i, c)| {
        acc | ((((*c as i32) - ('0' as i32)) & 0x3F) << (6 * i))
    });
    PgSqlErrorCode::from(code)
}

/// Raises `error` as an ERROR; never returns.
pub fn raise<E: SqlError + ?Sized>(error: &E) -> ! {
    let mut report = ErrorReport::new(sqlstate_code(error.sqlstate()), error.to_string(), "strata");
    if let Some(detail) = error.detail() {
        report = report.set_detail(detail);
    }
    if let Some(hint) = error.hint() {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}

/// Raises an ERROR with a message and SQLSTATE; usable in expression position.
pub fn error(code: PgSqlErrorCode, message: impl Into<String>) -> ! {
    ErrorReport::new(code, message.into(), "strata").report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}

/// `result.or_raise()` returns the value or raises the error.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T, E: SqlError> OrRaise<T> for Result<T, E> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => raise(&e),
        }
    }
}

/// Reports a NOTICE with a DETAIL and a HINT line.
pub fn notice(message: String, detail: &str, hint: &str) {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        message,
        "strata",
    )
    .set_detail(detail)
    .set_hint(hint)
    .report(PgLogLevel::NOTICE);
}
