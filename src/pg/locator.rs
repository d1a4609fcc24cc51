//! A relation's physical file identity (`RelFileNode` on PG15,
//! `RelFileLocator` since PG16) and its parts, in one place for the
//! version difference.

use crate::pg::relation::Rel;
use pgrx::pg_sys;

#[cfg(feature = "pg15")]
pub type Locator = pg_sys::RelFileNode;
#[cfg(not(feature = "pg15"))]
pub type Locator = pg_sys::RelFileLocator;

/// The file `rel` uses now.
pub fn of(rel: Rel) -> Locator {
    #[cfg(feature = "pg15")]
    let l = rel.data().rd_node;
    #[cfg(not(feature = "pg15"))]
    let l = rel.data().rd_locator;
    l
}

/// (tablespace, database, relfilenumber).
pub fn parts(l: &Locator) -> (u32, u32, u32) {
    #[cfg(feature = "pg15")]
    return (l.spcNode.into(), l.dbNode.into(), l.relNode.into());
    #[cfg(not(feature = "pg15"))]
    (l.spcOid.into(), l.dbOid.into(), l.relNumber.into())
}

/// The locator of (tablespace, database, relfilenumber): [`parts`]' inverse.
pub fn from_parts(spc: u32, db: u32, rel: u32) -> Locator {
    #[cfg(feature = "pg15")]
    return pg_sys::RelFileNode {
        spcNode: spc.into(),
        dbNode: db.into(),
        relNode: rel.into(),
    };
    #[cfg(not(feature = "pg15"))]
    pg_sys::RelFileLocator {
        spcOid: spc.into(),
        dbOid: db.into(),
        relNumber: rel.into(),
    }
}
