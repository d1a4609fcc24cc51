//! The handle for a snapshot PostgreSQL handed over ([`Snap`]): what
//! Strata's table code passes around instead of a raw `Snapshot`. Unlike a
//! relation, a snapshot argument may be absent — ANALYZE's block scans and
//! a tuple update's crosscheck snapshot are NULL — so the handle may be
//! empty, and every reader says what an empty one means.

use pgrx::pg_sys;

/// A snapshot (or none) that its holder keeps registered or active for as
/// long as it uses the handle. Made from the raw pointer only where
/// PostgreSQL hands one over (an access-method callback, a scan
/// descriptor, the snapshot manager), through the unsafe
/// [`Snap::from_raw`] whose caller vouches for it — so the functions that
/// read a snapshot are safe to call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(transparent)]
pub struct Snap(pg_sys::Snapshot);

impl Snap {
    /// # Safety
    /// `snapshot` is null or points at a snapshot that stays valid while
    /// the handle (and every copy of it) is used.
    pub unsafe fn from_raw(snapshot: pg_sys::Snapshot) -> Snap {
        Snap(snapshot)
    }

    /// No snapshot.
    pub const fn none() -> Snap {
        Snap(std::ptr::null_mut())
    }

    /// The raw pointer (maybe null), for PostgreSQL's functions.
    pub fn raw(self) -> pg_sys::Snapshot {
        self.0
    }

    pub fn is_none(self) -> bool {
        self.0.is_null()
    }

    /// The snapshot's data, or None for no snapshot.
    pub fn data(&self) -> Option<&pg_sys::SnapshotData> {
        // SAFETY: null or valid while the handle is used (from_raw's contract).
        unsafe { self.0.as_ref() }
    }

    /// Its kind, or None for no snapshot.
    pub fn kind(self) -> Option<pg_sys::SnapshotType::Type> {
        self.data().map(|s| s.snapshot_type)
    }

    /// Whether this is an MVCC snapshot (no snapshot: no).
    pub fn is_mvcc(self) -> bool {
        self.kind() == Some(pg_sys::SnapshotType::SNAPSHOT_MVCC)
    }
}
