//! The handle for an open relation ([`Rel`]): what Strata's table and
//! index code passes around instead of PostgreSQL's raw `Relation`.

use pgrx::pg_sys;
use std::ptr::NonNull;

/// An open relation: a relcache entry its holder keeps open (and locked)
/// for as long as it uses the handle. Strata's table and index code passes
/// this around instead of PostgreSQL's raw `Relation`; one is made from the
/// raw pointer only where PostgreSQL hands a relation over (an access
/// method callback, a relation opened here), through the unsafe
/// [`Rel::from_raw`] whose caller vouches for it — so the functions that
/// read a relation are safe to call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(transparent)]
pub struct Rel(NonNull<pg_sys::RelationData>);

impl Rel {
    /// # Safety
    /// `rel` points at a relcache entry that stays open while the handle
    /// (and every copy of it) is used.
    pub unsafe fn from_raw(rel: pg_sys::Relation) -> Rel {
        Rel(NonNull::new(rel).expect("a relation"))
    }

    /// [`Rel::from_raw`] of a pointer that may be null (PostgreSQL's
    /// optional relation arguments).
    ///
    /// # Safety
    /// As for [`Rel::from_raw`] when not null.
    pub unsafe fn from_nullable(rel: pg_sys::Relation) -> Option<Rel> {
        NonNull::new(rel).map(Rel)
    }

    /// The raw pointer, for PostgreSQL's functions.
    pub fn raw(self) -> pg_sys::Relation {
        self.0.as_ptr()
    }

    /// The relcache entry.
    pub fn data(&self) -> &pg_sys::RelationData {
        // SAFETY: open while the handle is used (from_raw's contract).
        unsafe { self.0.as_ref() }
    }

    /// The entry's `pg_class` row.
    pub fn form(&self) -> &pg_sys::FormData_pg_class {
        // SAFETY: an open relcache entry has a valid rd_rel.
        unsafe { &*self.data().rd_rel }
    }

    /// The relation's tuple descriptor.
    pub fn tupdesc(self) -> pg_sys::TupleDesc {
        self.data().rd_att
    }
}
