//! A built graph's neighbor lists, flat: what a build holds from the end of
//! its graph phase until its pages are written. Pure.
//!
//! Element `i`'s level-0 list takes slots `i * cap0 ..`, its upper lists
//! `cap` slots each from `upper[i]` on; a list ends at its first [`NONE`]
//! or at its capacity. Four bytes per slot: the in-memory build's own slot
//! array, taken over without a copy (nested vectors of `usize` took about
//! two and a half times that, next to the build's arrays while they were
//! filled — a `maintenance_work_mem` of 64 MB then held 45,000 GloVe
//! vectors instead of 100,000).

/// An empty slot: the list ends before it.
pub const NONE: u32 = u32::MAX;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Links {
    cap0: usize,
    cap: usize,
    /// First upper-level slot of each element (its level-0 list's end when
    /// it has no upper levels).
    upper: Vec<usize>,
    ids: Vec<u32>,
}

impl Links {
    /// Empty lists for elements of `levels` (each element's top level).
    pub fn new(cap0: usize, cap: usize, levels: &[u8]) -> Links {
        let upper = upper_slots(cap0, cap, levels);
        let slots = upper.last().map_or(0, |&u| u + *levels.last().unwrap() as usize * cap);
        Links::from_slots(cap0, cap, upper, vec![NONE; slots])
    }

    /// Lists laid out as described above (`ids` holds every slot).
    pub fn from_slots(cap0: usize, cap: usize, upper: Vec<usize>, ids: Vec<u32>) -> Links {
        debug_assert!(upper.first().is_none_or(|&u| u == upper.len() * cap0));
        debug_assert!(upper.windows(2).all(|w| w[0] <= w[1]) && upper.last().is_none_or(|&u| u <= ids.len()));
        Links { cap0, cap, upper, ids }
    }

    /// Lists given as `lists[i][level]` (element indexes), capacities
    /// `cap0` and `cap`; a longer list is cut at its capacity (tests).
    #[cfg(test)]
    pub fn from_nested(cap0: usize, cap: usize, lists: &[Vec<Vec<usize>>]) -> Links {
        let levels: Vec<u8> = lists.iter().map(|l| l.len().saturating_sub(1) as u8).collect();
        let mut links = Links::new(cap0, cap, &levels);
        for (i, ls) in lists.iter().enumerate() {
            for (level, l) in ls.iter().enumerate() {
                for &x in l {
                    links.push(i, level, x);
                }
            }
        }
        links
    }

    /// `lists[i][level]`, as [`Links::from_nested`] takes them (tests).
    #[cfg(test)]
    pub fn to_nested(&self) -> Vec<Vec<Vec<usize>>> {
        (0..self.len())
            .map(|i| {
                (0..=self.top_level(i))
                    .map(|l| self.list(i, l).iter().map(|&x| x as usize).collect())
                    .collect()
            })
            .collect()
    }

    /// How many elements there are.
    pub fn len(&self) -> usize {
        self.upper.len()
    }

    pub fn is_empty(&self) -> bool {
        self.upper.is_empty()
    }

    /// Element `i`'s top level.
    pub fn top_level(&self, i: usize) -> usize {
        let end = self.upper.get(i + 1).copied().unwrap_or(self.ids.len());
        (end - self.upper[i]) / self.cap.max(1)
    }

    fn range(&self, i: usize, level: usize) -> Option<std::ops::Range<usize>> {
        if level == 0 {
            Some(i * self.cap0..(i + 1) * self.cap0)
        } else if level <= self.top_level(i) {
            let s = self.upper[i] + (level - 1) * self.cap;
            Some(s..s + self.cap)
        } else {
            None
        }
    }

    /// Element `i`'s neighbors at `level` (empty above its top level).
    pub fn list(&self, i: usize, level: usize) -> &[u32] {
        let Some(r) = self.range(i, level) else {
            return &[];
        };
        let slots = &self.ids[r];
        let len = slots.iter().position(|&x| x == NONE).unwrap_or(slots.len());
        &slots[..len]
    }

    /// Appends `x` to element `i`'s list at `level`; false when it is full.
    pub fn push(&mut self, i: usize, level: usize, x: usize) -> bool {
        let len = self.list(i, level).len();
        match self.range(i, level) {
            Some(r) if len < r.len() => {
                self.ids[r.start + len] = x as u32;
                true
            }
            _ => false,
        }
    }

    /// Replaces entry `k` of element `i`'s list at `level` by `x`; returns
    /// the entry it replaced.
    pub fn replace(&mut self, i: usize, level: usize, k: usize, x: usize) -> usize {
        assert!(k < self.list(i, level).len(), "no entry {k} to replace");
        let at = self.range(i, level).expect("the list exists").start + k;
        std::mem::replace(&mut self.ids[at], x as u32) as usize
    }
}

/// Where each element's upper lists start, level-0 lists first.
fn upper_slots(cap0: usize, cap: usize, levels: &[u8]) -> Vec<usize> {
    let mut at = levels.len() * cap0;
    levels
        .iter()
        .map(|&l| {
            let u = at;
            at += l as usize * cap;
            u
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_and_stop_at_their_capacity() {
        let nested = vec![
            vec![vec![1, 2], vec![2]],
            vec![vec![0]],
            vec![vec![0, 1, 3], vec![0], vec![]],
            vec![vec![]],
        ];
        let mut links = Links::from_nested(3, 1, &nested);
        assert_eq!(links.len(), 4);
        assert_eq!((0..4).map(|i| links.top_level(i)).collect::<Vec<_>>(), [1, 0, 2, 0]);
        assert_eq!(links.to_nested(), nested);
        assert_eq!(links.list(1, 1), &[] as &[u32]);
        assert!(!links.push(2, 0, 1), "level 0 of element 2 is full");
        assert!(!links.push(2, 1, 3), "its level 1 too (capacity 1)");
        assert!(links.push(2, 2, 3));
        assert!(!links.push(1, 1, 0), "element 1 has no level 1");
        assert_eq!(links.replace(2, 0, 1, 0), 1);
        assert_eq!(links.list(2, 0), &[0, 0, 3]);
        assert_eq!(links.list(2, 2), &[3]);
        assert!(links.push(3, 0, 2));
        assert_eq!(links.list(3, 0), &[2]);
    }
}
