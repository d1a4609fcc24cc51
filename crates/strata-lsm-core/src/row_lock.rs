//! Row-lock arithmetic, heap's rules written as pure functions: which tuple
//! lock modes conflict, what an xmax already holds, whether a new locker or
//! updater must wait and which lockers stay recorded next to it.
//!
//! A version's xmax names either one transaction (with lock-mode bits in the
//! infomask) or a MultiXact whose members each carry a status. Both are
//! decoded into a list of [`Member`]s; [`decide`] then looks at that list
//! the way `heap_lock_tuple` and `heap_update` do:
//!
//! * members of the current transaction never conflict; if one of them
//!   already holds at least the requested lock, nothing is to be written;
//! * members that are no longer running are dropped — except an updater
//!   that committed after the caller's visibility check saw it running: the
//!   version is updated (proceeding would lose that update);
//! * a running member whose mode conflicts with the request must be waited
//!   for. A running updater counts by its lock strength too, so a KEY SHARE
//!   locker passes a running non-key update — the caller must then also lock
//!   the newer versions along the update chain ([`chain_step`]), as heap does;
//! * the remaining running members are kept: the new xmax is a MultiXact of
//!   them plus the requester, or the requester's xid alone.

/// `LockTupleMode`, weakest first (the numeric values are Postgres's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    KeyShare = 0,
    Share = 1,
    NoKeyExclusive = 2,
    Exclusive = 3,
}

impl Mode {
    /// The mode PostgreSQL numbers `v` (a larger number is taken as the
    /// strongest mode).
    pub fn from_raw(v: u32) -> Mode {
        use Mode::*;
        [KeyShare, Share, NoKeyExclusive, Exclusive][v.min(3) as usize]
    }
}

/// Heap's tuple-lock conflict table (`tupleLockExtraInfo` mapped onto the
/// heavyweight lock modes AccessShare, RowShare, Exclusive, AccessExclusive).
pub fn conflicts(a: Mode, b: Mode) -> bool {
    use Mode::*;
    match (a.min(b), a.max(b)) {
        (_, Exclusive) => true,
        (KeyShare, _) => false,
        (Share, Share) => false,
        _ => true, // Share/NoKeyExclusive, NoKeyExclusive/NoKeyExclusive
    }
}

/// `MultiXactStatus` (numeric values are Postgres's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    ForKeyShare = 0,
    ForShare = 1,
    ForNoKeyUpdate = 2,
    ForUpdate = 3,
    NoKeyUpdate = 4,
    Update = 5,
}

impl Status {
    /// The status PostgreSQL numbers `v` (a larger number is taken as the
    /// strongest status).
    pub fn from_raw(v: u32) -> Status {
        use Status::*;
        [ForKeyShare, ForShare, ForNoKeyUpdate, ForUpdate, NoKeyUpdate, Update][v.min(5) as usize]
    }
    /// The status of a row lock of `mode`.
    pub fn lock(mode: Mode) -> Status {
        match mode {
            Mode::KeyShare => Status::ForKeyShare,
            Mode::Share => Status::ForShare,
            Mode::NoKeyExclusive => Status::ForNoKeyUpdate,
            Mode::Exclusive => Status::ForUpdate,
        }
    }
    /// The status of an update (`keys`: a key column changed) or delete.
    pub fn update(keys: bool) -> Status {
        if keys {
            Status::Update
        } else {
            Status::NoKeyUpdate
        }
    }
    pub fn mode(self) -> Mode {
        match self {
            Status::ForKeyShare => Mode::KeyShare,
            Status::ForShare => Mode::Share,
            Status::ForNoKeyUpdate | Status::NoKeyUpdate => Mode::NoKeyExclusive,
            Status::ForUpdate | Status::Update => Mode::Exclusive,
        }
    }
    pub fn is_update(self) -> bool {
        matches!(self, Status::NoKeyUpdate | Status::Update)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub xid: u32,
    pub status: Status,
}

/// What a requester does with a version whose xmax is still of interest.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// The current transaction already holds a lock at least as strong.
    AlreadyHeld,
    /// Go ahead; these running members stay recorded in the new xmax.
    Proceed(Vec<Member>),
    /// Wait for these transactions, then look again.
    Wait(Vec<u32>),
    /// An updater committed after the caller's visibility check saw it
    /// running: the row version is now updated (or deleted).
    Updated,
}

/// Decides for a lock of `mode` (`update` false) or an update/delete whose
/// lock strength is `mode` (`update` true) against the xmax `members`.
pub fn decide(
    members: &[Member],
    mode: Mode,
    update: bool,
    is_current: impl Fn(u32) -> bool,
    is_running: impl Fn(u32) -> bool,
    did_commit: impl Fn(u32) -> bool,
) -> Decision {
    let mut keep = Vec::new();
    let mut wait = Vec::new();
    for &m in members {
        if is_current(m.xid) {
            if !update && !m.status.is_update() && m.status.mode() >= mode {
                return Decision::AlreadyHeld;
            }
            keep.push(m);
        } else if !is_running(m.xid) {
            // an updater that committed since the visibility check: too late
            // (an aborted one, like a finished locker, no longer counts)
            if m.status.is_update() && did_commit(m.xid) {
                return Decision::Updated;
            }
            continue;
        } else if conflicts(m.status.mode(), mode) {
            if !wait.contains(&m.xid) {
                wait.push(m.xid);
            }
        } else {
            keep.push(m);
        }
    }
    if wait.is_empty() {
        Decision::Proceed(keep)
    } else {
        Decision::Wait(wait)
    }
}

/// What locking one newer version of an update chain takes
/// (`heap_lock_updated_tuple_rec` with `test_lockmode_for_conflict`).
#[derive(Debug, PartialEq, Eq)]
pub enum ChainStep {
    /// The current transaction is already recorded: go on to the next one.
    Skip,
    /// Wait for this running transaction, then look at the version again.
    Wait(u32),
    /// A committed update or delete that conflicts: the row is gone.
    Updated,
    /// Record the lock next to these members (running ones, and a committed
    /// updater, which must stay so the version still reads as updated).
    Lock(Vec<Member>),
}

pub fn chain_step(
    members: &[Member],
    mode: Mode,
    is_current: impl Fn(u32) -> bool,
    is_running: impl Fn(u32) -> bool,
    did_commit: impl Fn(u32) -> bool,
) -> ChainStep {
    let mut keep = Vec::new();
    for &m in members {
        if is_current(m.xid) {
            return ChainStep::Skip;
        } else if is_running(m.xid) {
            if conflicts(m.status.mode(), mode) {
                return ChainStep::Wait(m.xid);
            }
            keep.push(m);
        } else if m.status.is_update() && did_commit(m.xid) {
            if conflicts(m.status.mode(), mode) {
                return ChainStep::Updated;
            }
            keep.push(m);
        }
    }
    ChainStep::Lock(keep)
}

/// The members of the new xmax: the kept ones plus the requester, minus
/// weaker entries of the requester's own xid that the new one subsumes.
pub fn merged(keep: &[Member], new: Member) -> Vec<Member> {
    let mut out: Vec<Member> = Vec::with_capacity(keep.len() + 1);
    out.extend(keep.iter().copied().filter(|m| {
        !(m.xid == new.xid && !m.status.is_update() && m.status.mode() <= new.status.mode())
    }));
    out.push(new);
    out
}

/// The infomask facts of a MultiXact xmax (`GetMultiXactIdHintBits`).
#[derive(Debug, PartialEq, Eq)]
pub struct MultiBits {
    pub strongest: Mode,
    pub has_update: bool,
    /// `HEAP_KEYS_UPDATED`: a FOR UPDATE lock or a key update is a member.
    pub keys: bool,
}

pub fn multi_bits(members: &[Member]) -> MultiBits {
    let mut b = MultiBits {
        strongest: Mode::KeyShare,
        has_update: false,
        keys: false,
    };
    for m in members {
        b.strongest = b.strongest.max(m.status.mode());
        b.has_update |= m.status.is_update();
        b.keys |= matches!(m.status, Status::ForUpdate | Status::Update);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use Mode::*;

    /// `decide` when every member belongs to another transaction that is
    /// still running.
    fn decide_others_running(members: &[Member], mode: Mode, update: bool) -> Decision {
        decide(members, mode, update, |_| false, |_| true, |_| false)
    }

    #[test]
    fn conflict_table_matches_heap() {
        let all = [KeyShare, Share, NoKeyExclusive, Exclusive];
        let expect = [
            [false, false, false, true],
            [false, false, true, true],
            [false, true, true, true],
            [true, true, true, true],
        ];
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                assert_eq!(conflicts(*a, *b), expect[i][j], "{a:?} vs {b:?}");
            }
        }
    }

    fn m(xid: u32, status: Status) -> Member {
        Member { xid, status }
    }

    #[test]
    fn share_lockers_combine() {
        let d = decide_others_running(&[m(10, Status::ForShare)], Share, false);
        assert_eq!(d, Decision::Proceed(vec![m(10, Status::ForShare)]));
        assert_eq!(
            merged(&[m(10, Status::ForShare)], m(11, Status::ForShare)).len(),
            2
        );
    }

    #[test]
    fn exclusive_waits_for_every_running_conflict() {
        let members = [
            m(10, Status::ForShare),
            m(11, Status::ForKeyShare),
            m(12, Status::ForShare),
        ];
        let d = decide(&members, Exclusive, true, |_| false, |x| x != 12, |_| true);
        assert_eq!(d, Decision::Wait(vec![10, 11]));
    }

    #[test]
    fn non_key_update_passes_key_share_lockers() {
        let d = decide_others_running(&[m(10, Status::ForKeyShare)], NoKeyExclusive, true);
        assert_eq!(d, Decision::Proceed(vec![m(10, Status::ForKeyShare)]));
        let b = multi_bits(&merged(
            &[m(10, Status::ForKeyShare)],
            m(11, Status::NoKeyUpdate),
        ));
        assert_eq!(
            b,
            MultiBits {
                strongest: NoKeyExclusive,
                has_update: true,
                keys: false
            }
        );
    }

    #[test]
    fn key_share_passes_a_running_non_key_update_only() {
        let d = decide_others_running(&[m(10, Status::NoKeyUpdate)], KeyShare, false);
        assert_eq!(d, Decision::Proceed(vec![m(10, Status::NoKeyUpdate)]));
        let d = decide_others_running(&[m(10, Status::Update)], KeyShare, false);
        assert_eq!(d, Decision::Wait(vec![10]));
        let d = decide_others_running(&[m(10, Status::NoKeyUpdate)], Share, false);
        assert_eq!(d, Decision::Wait(vec![10]));
        // updates and deletes always wait for a running updater
        let d = decide_others_running(&[m(10, Status::NoKeyUpdate)], NoKeyExclusive, true);
        assert_eq!(d, Decision::Wait(vec![10]));
    }

    #[test]
    fn chain_steps_follow_heap() {
        let run = |x: u32| x == 10;
        let com = |x: u32| x == 11;
        // a running conflicting updater: wait
        let step = chain_step(&[m(10, Status::Update)], KeyShare, |_| false, run, com);
        assert_eq!(step, ChainStep::Wait(10));
        // a committed non-key update stays recorded next to the new lock
        let step = chain_step(&[m(11, Status::NoKeyUpdate)], KeyShare, |_| false, run, com);
        assert_eq!(step, ChainStep::Lock(vec![m(11, Status::NoKeyUpdate)]));
        // a committed key update or delete: the key is gone
        let step = chain_step(&[m(11, Status::Update)], KeyShare, |_| false, run, com);
        assert_eq!(step, ChainStep::Updated);
        // already ours: go on without writing
        let step = chain_step(&[m(7, Status::ForKeyShare)], KeyShare, |x| x == 7, run, com);
        assert_eq!(step, ChainStep::Skip);
        // finished lockers and aborted updaters are dropped
        let step = chain_step(
            &[m(12, Status::ForShare), m(13, Status::NoKeyUpdate)],
            KeyShare,
            |_| false,
            run,
            com,
        );
        assert_eq!(step, ChainStep::Lock(vec![]));
    }

    #[test]
    fn own_locks_are_kept_or_suffice() {
        let own = [m(7, Status::ForUpdate)];
        assert_eq!(
            decide(&own, Share, false, |x| x == 7, |_| true, |_| false),
            Decision::AlreadyHeld
        );
        let weak = [m(7, Status::ForKeyShare), m(9, Status::ForKeyShare)];
        let d = decide(&weak, Share, false, |x| x == 7, |_| true, |_| false);
        assert_eq!(d, Decision::Proceed(weak.to_vec()));
        // the stronger lock of the same xid replaces the weaker one
        assert_eq!(
            merged(&weak, m(7, Status::ForShare)),
            vec![m(9, Status::ForKeyShare), m(7, Status::ForShare)]
        );
    }

    #[test]
    fn finished_lockers_are_forgotten() {
        let d = decide(
            &[m(10, Status::ForUpdate)],
            Exclusive,
            true,
            |_| false,
            |_| false,
            |_| true,
        );
        assert_eq!(d, Decision::Proceed(vec![]));
        // an aborted updater next to a running locker
        let d = decide(
            &[m(9, Status::ForShare), m(10, Status::Update)],
            Share,
            false,
            |_| false,
            |x| x == 9,
            |_| false,
        );
        assert_eq!(d, Decision::Proceed(vec![m(9, Status::ForShare)]));
    }

    #[test]
    fn an_updater_that_just_committed_means_updated() {
        let d = decide(
            &[m(10, Status::NoKeyUpdate)],
            NoKeyExclusive,
            true,
            |_| false,
            |_| false,
            |_| true,
        );
        assert_eq!(d, Decision::Updated);
        let d = decide(
            &[m(9, Status::ForKeyShare), m(10, Status::Update)],
            KeyShare,
            false,
            |_| false,
            |x| x == 9,
            |_| true,
        );
        assert_eq!(d, Decision::Updated);
    }

    #[test]
    fn multi_bits_follow_the_strongest_member() {
        let b = multi_bits(&[m(1, Status::ForKeyShare), m(2, Status::ForShare)]);
        assert_eq!(
            b,
            MultiBits {
                strongest: Share,
                has_update: false,
                keys: false
            }
        );
        let b = multi_bits(&[m(1, Status::ForKeyShare), m(2, Status::ForUpdate)]);
        assert_eq!(
            b,
            MultiBits {
                strongest: Exclusive,
                has_update: false,
                keys: true
            }
        );
    }

    #[test]
    fn modes_and_statuses_keep_postgres_numbers() {
        for v in 0..4 {
            assert_eq!(Mode::from_raw(v) as u32, v);
        }
        assert_eq!(Mode::from_raw(7), Exclusive);
        for v in 0..6 {
            assert_eq!(Status::from_raw(v) as u32, v);
        }
        assert_eq!(Status::from_raw(7), Status::Update);
    }
}
