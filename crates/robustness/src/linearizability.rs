//! A linearizability checker for key-value histories, in the style of
//! porcupine: the Wing–Gong–Lowe search with memoization of (operations
//! linearized, state) pairs, run per key because every operation here
//! touches one key and keys are independent.
//!
//! A history is the operations clients made, each with the time it was
//! invoked and the time its answer came back. An operation whose answer
//! never came (a timeout, a dropped connection) may or may not have taken
//! effect: it is given an unknown outcome and no return time, so the
//! search may place it anywhere after its invocation, including after
//! everything else, which is the same as never.
//!
//! The search walks the history in time order. At an invocation it tries
//! to linearize that operation now (if the model accepts its answer in
//! the current state, and this set of operations in this state was not
//! tried before); at a return whose operation is not linearized yet it
//! backtracks. The history is linearizable when every operation with an
//! answer is placed.

use std::collections::{BTreeMap, HashSet};

/// What a client asked of one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// Put `value`.
    Put(Vec<u8>),
    /// Read the key (linearizable or serializable: the model is the same,
    /// only the history may differ).
    Get,
    /// Delete the key.
    Delete,
    /// Put `value` if the key holds `expect` (`None`: does not exist).
    CompareAndSwap {
        /// The value the key must hold.
        expect: Option<Vec<u8>>,
        /// The value to put.
        value: Vec<u8>,
    },
}

/// What the client was answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// A write succeeded.
    Ok,
    /// A read returned this (`None`: no such key).
    Value(Option<Vec<u8>>),
    /// A compare-and-swap succeeded (`true`) or its compare failed.
    Swapped(bool),
    /// No answer: the operation may or may not have happened.
    Unknown,
}

/// One operation of a history. Times are from one clock (e.g.
/// nanoseconds since the run started); `returned` is `None` for an
/// unknown outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client that made it (for reports).
    pub client: usize,
    /// The key it touched.
    pub key: Vec<u8>,
    /// What was asked.
    pub input: Input,
    /// What was answered.
    pub output: Output,
    /// When it was invoked.
    pub invoked: u64,
    /// When the answer came, if it came.
    pub returned: Option<u64>,
}

/// A key whose operations admit no linearization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: Vec<u8>,
    /// Its operations, in invocation order.
    pub operations: Vec<Operation>,
}

/// The model: what one key holds, and how each operation changes it.
/// Returns the next state if `output` is a possible answer to `input` in
/// `state`.
fn step(state: &Option<Vec<u8>>, input: &Input, output: &Output) -> Option<Option<Vec<u8>>> {
    let unknown = *output == Output::Unknown;
    match input {
        Input::Put(v) => (unknown || *output == Output::Ok).then(|| Some(v.clone())),
        Input::Delete => (unknown || *output == Output::Ok).then_some(None),
        Input::Get => match output {
            Output::Unknown => Some(state.clone()),
            Output::Value(v) if v == state => Some(state.clone()),
            _ => None,
        },
        Input::CompareAndSwap { expect, value } => {
            let matches = expect == state;
            match output {
                Output::Unknown | Output::Swapped(true) if matches => Some(Some(value.clone())),
                Output::Unknown | Output::Swapped(false) if !matches => Some(state.clone()),
                _ => None,
            }
        }
    }
}

/// Checks `history`; the first key (in key order) that is not
/// linearizable, if any.
pub fn check(history: &[Operation]) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&[u8], Vec<&Operation>> = BTreeMap::new();
    for op in history {
        // A read without an answer tells nothing.
        if op.input == Input::Get && op.output == Output::Unknown {
            continue;
        }
        by_key.entry(&op.key).or_default().push(op);
    }
    for (key, ops) in by_key {
        if !check_key(&ops) {
            let mut operations: Vec<Operation> = ops.into_iter().cloned().collect();
            operations.sort_by_key(|o| o.invoked);
            return Err(Violation {
                key: key.to_vec(),
                operations,
            });
        }
    }
    Ok(())
}

/// Whether `op` observes without changing: a read, or a compare-and-swap
/// whose compare failed.
fn read_only(op: &Operation) -> bool {
    matches!(
        (&op.input, &op.output),
        (Input::Get, _) | (Input::CompareAndSwap { .. }, Output::Swapped(false))
    )
}

/// A smaller history of one key that is still not linearizable: read-only
/// operations of `ops` (a violation's) are dropped, first in large runs,
/// then one at a time, while the rest still admits no linearization,
/// until `budget` is spent. Only reads go: every answer left was really
/// given, and dropping an observation never makes a linearizable history
/// fail, so what is left is a violation among the operations shown.
pub fn minimize(ops: &[Operation], budget: std::time::Duration) -> Vec<Operation> {
    let deadline = std::time::Instant::now() + budget;
    let fails = |ops: &[Operation]| !check_key(&ops.iter().collect::<Vec<_>>());
    let mut kept = ops.to_vec();
    let mut run = kept.len() / 2;
    while run >= 1 {
        let mut at = 0;
        while at < kept.len() {
            if std::time::Instant::now() > deadline {
                return kept;
            }
            let end = (at + run).min(kept.len());
            if kept[at..end].iter().all(read_only) {
                let mut without = kept[..at].to_vec();
                without.extend_from_slice(&kept[end..]);
                if fails(&without) {
                    kept = without;
                    continue;
                }
            }
            at = end;
        }
        run /= 2;
    }
    kept
}

/// An event of the search's list: the invocation or the return of
/// operation `op`.
#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    time: u64,
}

/// A doubly linked list over a fixed array of events, from which an
/// operation's two events can be lifted out and put back.
struct Events {
    events: Vec<Event>,
    next: Vec<Option<usize>>,
    prev: Vec<Option<usize>>,
    head: Option<usize>,
    /// For each operation, the index of its call and return events.
    call_of: Vec<usize>,
    return_of: Vec<Option<usize>>,
}

impl Events {
    fn new(ops: &[&Operation]) -> Events {
        let mut events = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            events.push(Event {
                op: i,
                is_call: true,
                time: op.invoked,
            });
            if let Some(t) = op.returned {
                events.push(Event {
                    op: i,
                    is_call: false,
                    time: t,
                });
            }
        }
        // At the same time, invocations come first: the operations are
        // then concurrent, which allows either order.
        events.sort_by_key(|e| (e.time, !e.is_call));
        let n = events.len();
        let mut call_of = vec![0; ops.len()];
        let mut return_of = vec![None; ops.len()];
        for (i, e) in events.iter().enumerate() {
            if e.is_call {
                call_of[e.op] = i;
            } else {
                return_of[e.op] = Some(i);
            }
        }
        Events {
            events,
            next: (0..n).map(|i| (i + 1 < n).then_some(i + 1)).collect(),
            prev: (0..n).map(|i| i.checked_sub(1)).collect(),
            head: (n > 0).then_some(0),
            call_of,
            return_of,
        }
    }

    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        match p {
            Some(p) => self.next[p] = n,
            None => self.head = n,
        }
        if let Some(n) = n {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        match p {
            Some(p) => self.next[p] = Some(i),
            None => self.head = Some(i),
        }
        if let Some(n) = n {
            self.prev[n] = Some(i);
        }
    }

    /// Takes operation `op`'s events out of the list.
    fn lift(&mut self, op: usize) {
        self.unlink(self.call_of[op]);
        if let Some(r) = self.return_of[op] {
            self.unlink(r);
        }
    }

    /// Puts them back (in the reverse order of [`Events::lift`]).
    fn unlift(&mut self, op: usize) {
        if let Some(r) = self.return_of[op] {
            self.relink(r);
        }
        self.relink(self.call_of[op]);
    }

    /// Whether operation `op` was answered (an unanswered one may stay
    /// unplaced).
    fn answered(&self, op: usize) -> bool {
        self.return_of[op].is_some()
    }
}

/// The Wing–Gong–Lowe search over one key's operations.
fn check_key(ops: &[&Operation]) -> bool {
    let mut list = Events::new(ops);
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Option<Vec<u8>>)> = HashSet::new();
    let mut state: Option<Vec<u8>> = None;
    // (operation, state before it) for each operation placed so far.
    let mut placed: Vec<(usize, Option<Vec<u8>>)> = Vec::new();
    // Answered operations not placed yet.
    let mut open = (0..ops.len()).filter(|&o| list.answered(o)).count();
    let mut at = list.head;
    loop {
        if open == 0 {
            return true;
        }
        // An invocation: place its operation now if the model allows and
        // this set of placed operations in this state is new.
        if let Some(i) = at.filter(|&i| list.events[i].is_call) {
            let o = list.events[i].op;
            let op = ops[o];
            if let Some(next) = step(&state, &op.input, &op.output) {
                let mut with = linearized.clone();
                with[o / 64] |= 1 << (o % 64);
                if seen.insert((with.clone(), next.clone())) {
                    placed.push((o, std::mem::replace(&mut state, next)));
                    linearized = with;
                    list.lift(o);
                    open -= list.answered(o) as usize;
                    at = list.head;
                    continue;
                }
            }
            at = list.next[i];
            continue;
        }
        // A return whose operation could not be placed before it, or the
        // end with only unanswered invocations left: undo the last choice
        // and try its operation later.
        let Some((op, before)) = placed.pop() else {
            return false;
        };
        linearized[op / 64] &= !(1 << (op % 64));
        state = before;
        list.unlift(op);
        open += list.answered(op) as usize;
        at = list.next[list.call_of[op]];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        client: usize,
        input: Input,
        output: Output,
        invoked: u64,
        returned: Option<u64>,
    ) -> Operation {
        Operation {
            client,
            key: b"k".to_vec(),
            input,
            output,
            invoked,
            returned,
        }
    }

    fn put(v: &str) -> Input {
        Input::Put(v.as_bytes().to_vec())
    }

    fn got(v: Option<&str>) -> Output {
        Output::Value(v.map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn sequential_histories_follow_the_model() {
        let ok = [
            op(0, put("a"), Output::Ok, 0, Some(1)),
            op(0, Input::Get, got(Some("a")), 2, Some(3)),
            op(0, Input::Delete, Output::Ok, 4, Some(5)),
            op(0, Input::Get, got(None), 6, Some(7)),
        ];
        assert_eq!(check(&ok), Ok(()));
        let stale = [
            op(0, put("a"), Output::Ok, 0, Some(1)),
            op(1, put("b"), Output::Ok, 2, Some(3)),
            op(2, Input::Get, got(Some("a")), 4, Some(5)),
        ];
        assert!(
            check(&stale).is_err(),
            "a read after a later write returned the old value"
        );
    }

    #[test]
    fn a_violation_is_cut_down_to_the_reads_that_show_it() {
        let mut h = vec![op(0, put("a"), Output::Ok, 0, Some(1))];
        for t in 0..40 {
            h.push(op(
                1,
                Input::Get,
                got(Some("a")),
                10 + 2 * t,
                Some(11 + 2 * t),
            ));
        }
        h.push(op(2, put("b"), Output::Ok, 100, Some(101)));
        h.push(op(3, Input::Get, got(Some("a")), 200, Some(201)));
        let small = minimize(&h, std::time::Duration::from_secs(5));
        assert!(check(&small).is_err(), "still a violation");
        assert_eq!(
            small,
            vec![h[0].clone(), h[41].clone(), h[42].clone()],
            "the writes and the one stale read"
        );
    }

    #[test]
    fn concurrent_operations_may_take_either_order() {
        // The read overlaps both writes: "a" or "b" is fine, "c" is not.
        let h = |v| {
            vec![
                op(0, put("a"), Output::Ok, 0, Some(10)),
                op(1, put("b"), Output::Ok, 1, Some(9)),
                op(2, Input::Get, got(Some(v)), 2, Some(8)),
            ]
        };
        assert_eq!(check(&h("a")), Ok(()));
        assert_eq!(check(&h("b")), Ok(()));
        assert!(check(&h("c")).is_err());
    }

    #[test]
    fn an_unknown_outcome_may_have_happened_or_not() {
        let lost = |later: Option<&str>| {
            vec![
                op(0, put("a"), Output::Ok, 0, Some(1)),
                op(1, put("b"), Output::Unknown, 2, None),
                op(2, Input::Get, got(later), 3, Some(4)),
            ]
        };
        assert_eq!(
            check(&lost(Some("a"))),
            Ok(()),
            "the timed-out put did not happen"
        );
        assert_eq!(check(&lost(Some("b"))), Ok(()), "it did");
        assert!(check(&lost(None)).is_err());
        // Once seen, it cannot be unseen.
        let flicker = vec![
            op(0, put("a"), Output::Ok, 0, Some(1)),
            op(1, put("b"), Output::Unknown, 2, None),
            op(2, Input::Get, got(Some("b")), 3, Some(4)),
            op(2, Input::Get, got(Some("a")), 5, Some(6)),
        ];
        assert!(check(&flicker).is_err());
    }

    #[test]
    fn compare_and_swap_is_checked_against_the_state() {
        let cas = |expect: &str, swapped| {
            Input::CompareAndSwap {
                expect: Some(expect.as_bytes().to_vec()),
                value: b"z".to_vec(),
            }
            .pair(swapped)
        };
        let (i1, o1) = cas("a", true);
        let ok = [
            op(0, put("a"), Output::Ok, 0, Some(1)),
            op(1, i1, o1, 2, Some(3)),
            op(2, Input::Get, got(Some("z")), 4, Some(5)),
        ];
        assert_eq!(check(&ok), Ok(()));
        let (i2, o2) = cas("a", false);
        let wrong = [
            op(0, put("a"), Output::Ok, 0, Some(1)),
            op(1, i2, o2, 2, Some(3)),
        ];
        assert!(check(&wrong).is_err(), "the compare held, yet it failed");
        // Two racing swaps from the same value: only one may win.
        let (i3, o3) = cas("a", true);
        let (i4, o4) = cas("a", true);
        let both = [
            op(0, put("a"), Output::Ok, 0, Some(1)),
            op(1, i3, o3, 2, Some(6)),
            op(2, i4, o4, 3, Some(7)),
        ];
        assert!(check(&both).is_err());
    }

    #[test]
    fn keys_are_checked_apart_and_the_bad_one_is_named() {
        let mut h = vec![
            op(0, put("a"), Output::Ok, 0, Some(1)),
            op(0, Input::Get, got(Some("a")), 2, Some(3)),
        ];
        let mut other = op(1, put("x"), Output::Ok, 0, Some(1));
        other.key = b"j".to_vec();
        let mut bad = op(1, Input::Get, got(Some("y")), 2, Some(3));
        bad.key = b"j".to_vec();
        h.push(other);
        h.push(bad);
        let v = check(&h).unwrap_err();
        assert_eq!(v.key, b"j");
        assert_eq!(v.operations.len(), 2);
    }

    #[test]
    fn long_concurrent_histories_are_checked() {
        // 10 clients, 300 operations each on one key, every read sees the
        // write it overlaps or the last one before it.
        let mut h = Vec::new();
        let mut t = 0;
        let mut last = None;
        for round in 0..300u64 {
            let value = format!("v{round}");
            let writer = (round % 10) as usize;
            h.push(op(writer, put(&value), Output::Ok, t, Some(t + 5)));
            for c in 0..10 {
                if c != writer {
                    let seen = if c % 2 == 0 {
                        Some(value.as_str())
                    } else {
                        last.as_deref()
                    };
                    h.push(op(c, Input::Get, got(seen), t + 1, Some(t + 4)));
                }
            }
            last = Some(value);
            t += 10;
        }
        assert_eq!(check(&h), Ok(()));
        // One read of a value never written breaks it.
        h[42].output = got(Some("never"));
        assert!(check(&h).is_err());
    }

    trait Pair {
        fn pair(self, swapped: bool) -> (Input, Output);
    }

    impl Pair for Input {
        fn pair(self, swapped: bool) -> (Input, Output) {
            (self, Output::Swapped(swapped))
        }
    }
}
