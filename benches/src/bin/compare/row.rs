//! A row of the table: one workload's figures on the five transports, its
//! unit, lonet's target on it and how the target is judged.

/// The transports, in the order of a row's cells.
pub const COLS: [&str; 5] = ["lonet", "kernel TCP", "Unix", "duplex", "turmoil-net"];

/// The column of turmoil-net in [`COLS`].
pub const TURMOIL: usize = 4;

/// One transport's figure for one workload.
#[derive(Clone)]
pub enum Cell {
    /// The figure, in the row's unit.
    Val(f64),
    /// No figure, and why (the transport cannot run it, or it is not seen).
    NotApplicable(&'static str),
    /// The workload failed or hung: the message.
    Failed(String),
}

impl Cell {
    /// The figure, if there is one.
    pub fn val(&self) -> Option<f64> {
        match self {
            Cell::Val(v) => Some(*v),
            _ => None,
        }
    }

    /// The cell as the table shows it.
    pub fn fmt(&self, unit: Unit) -> String {
        match self {
            Cell::Val(v) => unit.fmt(*v),
            Cell::NotApplicable(why) => why.to_string(),
            Cell::Failed(_) => "FAILED".into(),
        }
    }
}

/// A row's unit.
#[derive(Clone, Copy, PartialEq)]
pub enum Unit {
    /// Microseconds (a round trip).
    Micros,
    /// Gigabytes (10⁹ bytes) per second.
    GBps,
    /// Operations per second.
    PerSec,
    /// Bytes held.
    Bytes,
}

impl Unit {
    /// Whether a smaller figure is the better one.
    pub fn lower_is_better(self) -> bool {
        matches!(self, Unit::Micros | Unit::Bytes)
    }

    /// The unit's name.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Micros => "µs",
            Unit::GBps => "GB/s",
            Unit::PerSec => "per s",
            Unit::Bytes => "bytes",
        }
    }

    /// A figure in this unit: "0.96 µs", "595.2k/s", "1.82 KiB".
    pub fn fmt(self, v: f64) -> String {
        match self {
            Unit::Micros => format!("{v:.2} µs"),
            Unit::GBps => format!("{v:.2} GB/s"),
            Unit::PerSec if v >= 1e6 => format!("{:.2}M/s", v / 1e6),
            Unit::PerSec if v >= 1e3 => format!("{:.1}k/s", v / 1e3),
            Unit::PerSec => format!("{v:.0}/s"),
            Unit::Bytes if v >= 1024.0 * 1024.0 => format!("{:.2} MiB", v / 1024.0 / 1024.0),
            Unit::Bytes if v >= 1024.0 => format!("{:.2} KiB", v / 1024.0),
            Unit::Bytes => format!("{v:.0} B"),
        }
    }
}

/// lonet's target on a row.
#[derive(Clone)]
pub enum Target {
    /// lonet ÷ TCP, lonet ÷ duplex and lonet ÷ turmoil-net within bounds
    /// (`None`: no bound), each in the row's unit's direction.
    Ratios {
        /// The bound on lonet ÷ kernel TCP.
        tcp: Option<f64>,
        /// The bound on lonet ÷ duplex.
        duplex: Option<f64>,
        /// The bound on lonet ÷ turmoil-net.
        turmoil: Option<f64>,
    },
    /// lonet's own figure at most this.
    AtMost(f64),
    /// lonet's aggregate ÷ its single-stream figure at least this.
    VsOneStream {
        /// The least ratio.
        min: f64,
        /// lonet's single-stream figure in the same run.
        one_stream: Option<f64>,
    },
    /// No target on this row.
    None,
}

/// One workload's row.
pub struct Row {
    /// The workload, with its sizes.
    pub name: String,
    /// The unit of its figures.
    pub unit: Unit,
    /// The figures, in the order of [`COLS`].
    pub cells: [Cell; 5],
    /// lonet's target.
    pub target: Target,
    /// The target as the table states it.
    pub target_text: String,
    /// Targets are stated for the current-thread runtime; on other rows the
    /// verdict is for information (marked with *).
    pub informational: bool,
}

impl Row {
    /// lonet's figure ÷ the figure in column `other`.
    pub fn ratio(&self, other: usize) -> Option<f64> {
        Some(self.cells[0].val()? / self.cells[other].val()?)
    }

    /// Whether lonet meets the row's target on this run: "MET", "MISSED
    /// (2.71× vs duplex)", "MET*" (informational), "–" (no target).
    pub fn verdict(&self) -> String {
        let star = if self.informational { "*" } else { "" };
        let ok = |b: bool| if b { "MET" } else { "MISSED" };
        let lower = self.unit.lower_is_better();
        let within = |r: f64, bound: f64| if lower { r <= bound } else { r >= bound };
        match &self.target {
            Target::None => "–".into(),
            Target::Ratios {
                tcp,
                duplex,
                turmoil,
            } => {
                let mut missed = Vec::new();
                // turmoil-net not run at all (its runner not built): the
                // other bounds are still judged, and the verdict says so.
                let mut not_run = "";
                for (bound, col, name) in [
                    (tcp, 1, "TCP"),
                    (duplex, 3, "duplex"),
                    (turmoil, TURMOIL, "turmoil-net"),
                ] {
                    if let Some(bound) = bound {
                        match self.ratio(col) {
                            Some(r) if within(r, *bound) => {}
                            Some(r) => missed.push(format!("{} vs {name}", fmt_ratio(Some(r)))),
                            None if col == TURMOIL
                                && self.cells[0].val().is_some()
                                && matches!(self.cells[col], Cell::NotApplicable(_)) =>
                            {
                                not_run = "turmoil-net not run";
                            }
                            None => return "no figure".into(),
                        }
                    }
                }
                match (missed.is_empty(), not_run.is_empty()) {
                    (true, true) => format!("MET{star}"),
                    (true, false) => format!("MET{star} ({not_run})"),
                    (false, true) => format!("MISSED{star} ({})", missed.join(", ")),
                    (false, false) => format!("MISSED{star} ({}; {not_run})", missed.join(", ")),
                }
            }
            Target::AtMost(max) => match self.cells[0].val() {
                Some(v) => format!("{}{star}", ok(v <= *max)),
                None => "no figure".into(),
            },
            Target::VsOneStream { min, one_stream } => match (self.cells[0].val(), one_stream) {
                (Some(agg), Some(one)) => {
                    let r = agg / one;
                    format!("{}{star} ({r:.2}× one stream)", ok(r >= *min))
                }
                _ => "no figure".into(),
            },
        }
    }
}

/// A ratio as the table shows it: "0.0730×", "0.871×", "25.10×", "–".
pub fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r < 0.1 => format!("{r:.4}×"),
        Some(r) if r < 1.0 => format!("{r:.3}×"),
        Some(r) => format!("{r:.2}×"),
        None => "–".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(unit: Unit, cells: [f64; 5], target: Target, informational: bool) -> Row {
        Row {
            name: "w".into(),
            unit,
            cells: cells.map(Cell::Val),
            target,
            target_text: String::new(),
            informational,
        }
    }

    #[test]
    fn ratios_are_judged_in_the_units_direction() {
        let rtt = |lonet, star| {
            let t = Target::Ratios {
                tcp: Some(0.1),
                duplex: Some(2.0),
                turmoil: Some(0.5),
            };
            row(Unit::Micros, [lonet, 13.0, 7.0, 0.5, 2.0], t, star).verdict()
        };
        assert_eq!(rtt(0.9, false), "MET");
        assert_eq!(
            rtt(1.4, true),
            "MISSED* (0.108× vs TCP, 2.80× vs duplex, 0.700× vs turmoil-net)"
        );
        let bulk = |turmoil| Target::Ratios {
            tcp: Some(4.0),
            duplex: None,
            turmoil,
        };
        let r = row(Unit::GBps, [19.5, 5.2, 6.3, 19.7, 10.0], bulk(None), false);
        assert_eq!(r.verdict(), "MISSED (3.75× vs TCP)");
        let r = row(
            Unit::GBps,
            [21.0, 5.2, 6.3, 19.7, 11.0],
            bulk(Some(2.0)),
            false,
        );
        assert_eq!(r.verdict(), "MISSED (1.91× vs turmoil-net)");
        let mut r = row(
            Unit::GBps,
            [21.0, 5.2, 6.3, 19.7, 10.0],
            bulk(Some(2.0)),
            false,
        );
        assert_eq!(r.verdict(), "MET");
        r.cells[TURMOIL] = Cell::NotApplicable("n/a (not built)");
        assert_eq!(r.verdict(), "MET (turmoil-net not run)");
        r.cells[0] = Cell::Val(19.0);
        assert_eq!(r.verdict(), "MISSED (3.65× vs TCP; turmoil-net not run)");
        r.cells[TURMOIL] = Cell::Failed("hung".into());
        assert_eq!(r.verdict(), "no figure");
    }

    #[test]
    fn other_targets() {
        let mem = row(
            Unit::Bytes,
            [1864.0, 0.0, 0.0, 208.0, 0.0],
            Target::AtMost(4096.0),
            false,
        );
        assert_eq!(mem.verdict(), "MET");
        let many = Target::VsOneStream {
            min: 0.7,
            one_stream: Some(20.0),
        };
        let r = row(Unit::GBps, [5.0, 2.7, 2.8, 4.3, 0.0], many, false);
        assert_eq!(r.verdict(), "MISSED (0.25× one stream)");
        assert_eq!(
            row(Unit::PerSec, [1.0; 5], Target::None, false).verdict(),
            "–"
        );
        let mut none = row(Unit::Bytes, [0.0; 5], Target::AtMost(1.0), false);
        none.cells[0] = Cell::NotApplicable("n/a");
        assert_eq!(none.verdict(), "no figure");
        assert_eq!(fmt_ratio(Some(0.073)), "0.0730×");
        assert_eq!(fmt_ratio(Some(0.8712)), "0.871×");
        assert_eq!(fmt_ratio(Some(25.1)), "25.10×");
        assert_eq!(fmt_ratio(None), "–");
    }
}
