use std::cell::RefCell;

use super::*;
use crate::rules::file::{parse, Lang};
use crate::tsdb::{is_stale, Querier, RawSeries, SeriesList};

/// Series in memory; rule output is appended so later rules and evaluations see it.
#[derive(Default)]
struct Mem(RefCell<Vec<RawSeries>>);

impl Mem {
    fn add(&self, labels: Labels, t: i64, v: f64) {
        let mut all = self.0.borrow_mut();
        match all.iter_mut().find(|s| *s.labels == labels) {
            Some(s) => s.samples.push((t, v)),
            None => all.push(RawSeries {
                labels: Arc::new(labels),
                samples: vec![(t, v)],
            }),
        }
    }
}

impl Source for Mem {
    fn query(&self, q: &Query, t: i64) -> Result<Vec<(Labels, f64)>, String> {
        let Query::Prom(e) = q else { unreachable!() };
        let list = SeriesList(self.0.borrow().clone());
        crate::rules::manager::prom_rows(&list, e, t)
    }
    fn last_sample(&self, labels: &Labels, mint: i64, maxt: i64) -> Option<(i64, f64)> {
        let list = SeriesList(self.0.borrow().clone());
        crate::rules::manager::last_sample(&list as &dyn Querier, labels, mint, maxt)
    }
}

const RULES: &str = r#"
groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: Down
        expr: up == 0
        for: 1m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.instance }} down ({{ $value }}); {{ with query \"job:up:sum\" }}{{ . | first | value }}{{ end }} up"
      - alert: Broken
        expr: up + on(nope) group_left up
"#;

fn eval(g: &mut GroupState, mem: &Mem, ts: i64) -> Vec<SeriesSamples> {
    let mut written = Vec::new();
    g.eval(ts, ts, mem, &Env::default(), &mut |batch| {
        for s in &batch {
            for (t, v) in &s.samples {
                mem.add(Labels::new(s.labels.clone()), *t, *v);
            }
        }
        written.extend(batch);
        Ok(())
    });
    written
}

fn find<'a>(out: &'a [SeriesSamples], name: &str, extra: &[(&str, &str)]) -> Option<&'a SeriesSamples> {
    out.iter().find(|s| {
        let l = Labels::new(s.labels.clone());
        l.metric_name() == Some(name) && extra.iter().all(|(k, v)| l.get(k) == Some(*v))
    })
}

#[test]
fn a_group_records_alerts_and_marks_stale() {
    let g = parse("r.yml", RULES, Lang::PromQL).unwrap().remove(0);
    let mut g = GroupState::new(g, 60_000);
    g.set_restored();
    let mem = Mem::default();
    let up = |i: &str| Labels::from_pairs([("__name__", "up"), ("job", "node"), ("instance", i)]);
    for t in (0..=240_000).step_by(15_000) {
        mem.add(up("a"), t, 1.0);
        mem.add(up("b"), t, if t >= 60_000 { 0.0 } else { 1.0 });
    }

    let out = eval(&mut g, &mem, 60_000);
    assert_eq!(
        find(&out, "job:up:sum", &[("job", "node")]).unwrap().samples,
        [(60_000, 1.0)]
    );
    let alerts = find(&out, "ALERTS", &[("alertstate", "pending"), ("instance", "b")]).expect("pending");
    assert_eq!(Labels::new(alerts.labels.clone()).get("severity"), Some("page"));
    assert_eq!(
        find(&out, "ALERTS_FOR_STATE", &[("instance", "b")])
            .unwrap()
            .samples,
        [(60_000, 60.0)]
    );
    let a = g.rules[1].alerts.values().next().unwrap();
    // The template read the recording rule's output of this very evaluation.
    assert_eq!(a.annotations[0].1, "b down (0); 1 up");
    // The failing rule is marked and the others ran.
    assert_eq!(g.rules[2].health, Health::Err);
    assert!(
        g.rules[2].last_error.contains("group"),
        "{}",
        g.rules[2].last_error
    );
    assert_eq!((g.rules[0].health, g.rules[1].health), (Health::Ok, Health::Ok));

    let out = eval(&mut g, &mem, 120_000);
    assert!(find(&out, "ALERTS", &[("alertstate", "firing")]).is_some());
    // The pending series went stale when the alert fired.
    let pending = find(&out, "ALERTS", &[("alertstate", "pending")]).unwrap();
    assert!(is_stale(pending.samples[0].1));

    // b is back: the alert resolves and its series go stale.
    for t in (255_000..=400_000).step_by(15_000) {
        mem.add(up("a"), t, 1.0);
        mem.add(up("b"), t, 1.0);
    }
    let out = eval(&mut g, &mem, 300_000);
    let firing = find(&out, "ALERTS", &[("alertstate", "firing")]).unwrap();
    assert!(is_stale(firing.samples[0].1));
    assert_eq!(g.rules[1].alerts.values().next().unwrap().state, State::Inactive);
    assert_eq!(find(&out, "job:up:sum", &[]).unwrap().samples, [(300_000, 2.0)]);
}

#[test]
fn alerts_are_written_only_once_restored_and_restore_keeps_the_time_spent_pending() {
    let text =
        "groups:\n  - name: g\n    rules:\n      - alert: Slow\n        expr: up == 0\n        for: 30m\n";
    let rules = parse("r.yml", text, Lang::PromQL).unwrap().remove(0);
    let min = 60_000;
    let mem = Mem::default();
    let up = Labels::from_pairs([("__name__", "up"), ("instance", "a")]);
    for t in (0..=60 * min).step_by(min as usize) {
        mem.add(up.clone(), t, 0.0);
    }
    // Before the restart the alert had been pending since minute 5; the store went down at 10.
    let was = Labels::from_pairs([
        ("__name__", "ALERTS_FOR_STATE"),
        ("alertname", "Slow"),
        ("instance", "a"),
    ]);
    for t in (5 * min..=10 * min).step_by(min as usize) {
        mem.add(was.clone(), t, 300.0);
    }
    let mut g = GroupState::new(rules, min);
    let out = eval(&mut g, &mem, 20 * min);
    assert!(out.is_empty(), "nothing before the restore: {out:?}");
    eval(&mut g, &mem, 21 * min);
    g.restore(21 * min, &mem);
    // 5 of 30 minutes were spent; the 25 left count from the restart.
    assert_eq!(
        g.rules[0].alerts.values().next().unwrap().active_at,
        5 * min + (21 * min - 10 * min)
    );
    let out = eval(&mut g, &mem, 22 * min);
    assert!(find(&out, "ALERTS", &[("alertstate", "pending")]).is_some());
}

#[test]
fn limit_and_query_offset() {
    let text = "groups:\n  - name: g\n    limit: 1\n    query_offset: 1m\n    rules:\n      - record: r\n        expr: up\n      - alert: A\n        expr: up > 0\n";
    let rules = parse("r.yml", text, Lang::PromQL).unwrap().remove(0);
    let mem = Mem::default();
    let up = |i: &str| Labels::from_pairs([("__name__", "up"), ("i", i)]);
    mem.add(up("1"), 60_000, 1.0);
    // Only one series at the offset time: the rules run at ts - 1m and write there.
    mem.add(up("2"), 110_000, 1.0);
    let mut g = GroupState::new(rules.clone(), 60_000);
    g.set_restored();
    let out = eval(&mut g, &mem, 120_000);
    assert_eq!(find(&out, "r", &[("i", "1")]).unwrap().samples, [(60_000, 1.0)]);
    assert!(find(&out, "ALERTS", &[("i", "1")]).unwrap().samples[0].0 == 60_000);
    assert_eq!((g.rules[0].health, g.rules[1].health), (Health::Ok, Health::Ok));
    // Two series at the offset time: over the limit, both rules fail and write nothing.
    let mut g = GroupState::new(rules, 60_000);
    g.set_restored();
    let out = eval(&mut g, &mem, 170_000);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(g.rules[0].last_error, "exceeded limit of 1 with 2 series");
    assert_eq!(g.rules[1].last_error, "exceeded limit of 1 with 2 alerts");
}
