//! PostgreSQL errors that keep their whole report when they pass through
//! Rust frames.
//!
//! pgrx guards every `pg_sys` call: an ERROR raised inside becomes a Rust
//! panic that keeps the SQLSTATE, message, detail and hint, and is raised
//! again where the callback PostgreSQL called returns. What the error
//! collected inside the call is lost: the CONTEXT lines pushed there (the
//! PL/pgSQL function and line of an index expression that failed, a lock
//! wait's "while updating tuple (1,1) in relation ...") and the schema,
//! table, column, data type and constraint names. Heap reports them.
//!
//! For the calls that run such code (index expressions and predicates,
//! lock waits), [`catching`] is `PG_TRY`/`PG_CATCH`: it makes the call
//! unguarded under a `sigsetjmp` of its own and keeps a copy of the whole
//! error (`CopyErrorData`) while Rust unwinds; [`rethrowing`], around the
//! body of an access method callback, raises that copy again with
//! `ReThrowError`, as `PG_RE_THROW` would have. The panic carries what
//! pgrx's would, so a callback without [`rethrowing`] reports the error as
//! pgrx does.
//!
//! ```text
//!  PostgreSQL ──> callback: rethrowing ──> ... ──> catching(raw call) ──> index expression: ERROR
//!                     ^ ReThrowError(copy)            | longjmp to its sigsetjmp: CopyErrorData,
//!                     └──── Rust unwinds (panic) ─────┘ FlushErrorState, panic
//! ```
//!
//! The copy lives in a backend-lifetime memory context, reset before each
//! new copy (`ReThrowError` copies it into `ErrorContext`); it is raised
//! again only by a [`rethrowing`] of the same (sub)transaction whose panic
//! carries its message, detail and hint.

// raw declarations keep PostgreSQL's C names
#![allow(non_snake_case)]

use super::relation::Rel;
use super::xact;
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use std::cell::Cell;
use std::ffi::CStr;

// Not guarded: called only inside `catching`, whose sigsetjmp catches
// their errors (pgrx's guard would catch them first and drop the context).
unsafe extern "C-unwind" {
    fn FormIndexDatum(
        indexInfo: *mut pg_sys::IndexInfo,
        slot: *mut pg_sys::TupleTableSlot,
        estate: *mut pg_sys::EState,
        values: *mut pg_sys::Datum,
        isnull: *mut bool,
    );
    /// executor.h's inline `ExecQual`, as pgrx's C shim exports it.
    #[link_name = "ExecQual__pgrx_cshim"]
    fn ExecQual(state: *mut pg_sys::ExprState, econtext: *mut pg_sys::ExprContext) -> bool;
    fn XactLockTableWait(
        xid: pg_sys::TransactionId,
        rel: pg_sys::Relation,
        ctid: pg_sys::ItemPointer,
        oper: pg_sys::XLTW_Oper::Type,
    );
    /// Raises a copied error again; never returns (a longjmp).
    fn ReThrowError(edata: *mut pg_sys::ErrorData);
}

/// An error copy waiting for [`rethrowing`], with the transaction and
/// subtransaction it was raised in.
#[derive(Clone, Copy)]
struct Pending {
    edata: *mut pg_sys::ErrorData,
    xact: pg_sys::LocalTransactionId,
    subxact: pg_sys::SubTransactionId,
}

thread_local! {
    static PENDING: Cell<Option<Pending>> = const { Cell::new(None) };
    static COPIES: Cell<pg_sys::MemoryContext> = const { Cell::new(std::ptr::null_mut()) };
}

/// The memory context error copies live in (made once per backend).
fn copies() -> pg_sys::MemoryContext {
    COPIES.with(|c| {
        if c.get().is_null() {
            // SAFETY: a small context under TopMemoryContext, kept for the
            // backend's life (ALLOCSET_SMALL_SIZES).
            c.set(unsafe {
                pg_sys::AllocSetContextCreateInternal(
                    pg_sys::TopMemoryContext,
                    c"strata error copy".as_ptr(),
                    0,
                    1024,
                    8 * 1024,
                )
            });
        }
        c.get()
    })
}

fn text(s: *const std::ffi::c_char) -> Option<String> {
    // SAFETY: a NUL-terminated string of a copied ErrorData, or null.
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
}

/// Calls `f` — one call into C, with no Rust value to drop inside it —
/// catching an ERROR it raises: the whole error is copied for
/// [`rethrowing`] and Rust unwinds with a panic carrying its SQLSTATE,
/// message, detail and hint.
///
/// # Safety
/// `f` holds no Rust value with a destructor while it calls into C (a
/// longjmp returns past it), and calls only what may run in the current
/// state of the backend.
unsafe fn catching<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: elog.c's backend globals, saved and restored as PG_TRY does;
    // the jump buffer lives in `call_with_sigsetjmp`'s frame while `f` runs.
    unsafe {
        let memory = pg_sys::CurrentMemoryContext;
        let outer = pg_sys::PG_exception_stack;
        let context = pg_sys::error_context_stack;
        let mut out = std::mem::MaybeUninit::<T>::uninit();
        let jumped = cee_scape::call_with_sigsetjmp(false, |jump| {
            pg_sys::PG_exception_stack =
                (jump as *const cee_scape::SigJmpBufFields).cast_mut().cast::<pg_sys::sigjmp_buf>();
            out.write(f());
            0
        });
        pg_sys::PG_exception_stack = outer;
        pg_sys::error_context_stack = context;
        if jumped == 0 {
            return out.assume_init();
        }
        // an ERROR (FATAL and PANIC end the process): copy all of it
        let keep = copies();
        pg_sys::MemoryContextReset(keep);
        pg_sys::CurrentMemoryContext = keep;
        let edata = pg_sys::CopyErrorData();
        pg_sys::CurrentMemoryContext = memory;
        pg_sys::FlushErrorState();
        PENDING.with(|p| {
            p.set(Some(Pending {
                edata,
                xact: xact::local_xact_id(),
                subxact: xact::current_subxact(),
            }))
        });
        let e = &*edata;
        let mut report = ErrorReport::new(
            PgSqlErrorCode::from(e.sqlerrcode),
            text(e.message).unwrap_or_default(),
            "strata",
        );
        if let Some(detail) = text(e.detail) {
            report = report.set_detail(detail);
        }
        if let Some(hint) = text(e.hint) {
            report = report.set_hint(hint);
        }
        std::panic::panic_any(report)
    }
}

/// Runs an access method callback's body: an error [`catching`] copied
/// that unwinds out of it is raised again whole (`ReThrowError`); any
/// other panic unwinds on, to pgrx's guard.
pub fn rethrowing<T>(body: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            let pending = PENDING.with(|p| p.take()).filter(|p| {
                p.xact == xact::local_xact_id() && p.subxact == xact::current_subxact()
            });
            let copy = pending.map(|p| p.edata).filter(|&edata| {
                payload.downcast_ref::<ErrorReport>().is_some_and(|r| {
                    // SAFETY: the copy made by `catching`, kept until the next one.
                    let e = unsafe { &*edata };
                    text(e.message).as_deref() == Some(r.message())
                        && text(e.detail).as_deref() == r.detail()
                        && text(e.hint).as_deref() == r.hint()
                })
            });
            let Some(edata) = copy else {
                std::panic::resume_unwind(payload)
            };
            drop(payload);
            // SAFETY: a copied ERROR in a context that outlives the call
            // (ReThrowError copies it into ErrorContext); the frames the
            // longjmp leaves hold nothing left to drop.
            unsafe { ReThrowError(edata) };
            unreachable!("ReThrowError returned")
        }
    }
}

/// `FormIndexDatum`, its errors caught whole (see [`catching`]).
///
/// # Safety
/// As `FormIndexDatum`: an IndexInfo, a slot holding a row of its table,
/// its EState, and room for `INDEX_MAX_KEYS` values and nulls.
pub unsafe fn form_index_datum(
    info: *mut pg_sys::IndexInfo,
    slot: *mut pg_sys::TupleTableSlot,
    estate: *mut pg_sys::EState,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
) {
    // SAFETY: one C call with the caller's valid arguments.
    unsafe { catching(|| FormIndexDatum(info, slot, estate, values, isnull)) }
}

/// `ExecQual`, its errors caught whole (see [`catching`]).
///
/// # Safety
/// A prepared qual (not null) and its expression context.
pub unsafe fn exec_qual(state: *mut pg_sys::ExprState, econtext: *mut pg_sys::ExprContext) -> bool {
    // SAFETY: one C call with the caller's valid arguments.
    unsafe { catching(|| ExecQual(state, econtext)) }
}

/// `XactLockTableWait`, its errors (a deadlock, a lock timeout, a cancel,
/// each with heap's "while ... tuple" context) caught whole.
pub fn xact_lock_table_wait(
    xid: pg_sys::TransactionId,
    rel: Rel,
    tid: pg_sys::ItemPointerData,
    oper: pg_sys::XLTW_Oper::Type,
) {
    let mut t = tid;
    let (rel, ctid) = (rel.raw(), &mut t as *mut pg_sys::ItemPointerData);
    // SAFETY: one C call: an open relation and a local item pointer.
    unsafe { catching(|| XactLockTableWait(xid, rel, ctid, oper)) }
}
