//! The command line.

/// What the command line asked for.
pub struct Args {
    /// Also write the table as CSV here.
    pub csv: Option<String>,
    /// Also write the header, table, legend and notes as Markdown here.
    pub markdown: Option<String>,
    /// Also draw the figures as an SVG bar chart here.
    pub svg: Option<String>,
    /// A tenth of the sizes: a smoke run.
    pub quick: bool,
    /// Count the instructions per operation in this run (valgrind), instead
    /// of printing the committed counts.
    pub icount: bool,
}

const USAGE: &str = "\
usage: cargo run --release -p lonet-bench --bin compare [-- [--quick] [--icount] [--csv PATH] [--markdown PATH] [--svg PATH]]
--quick          a tenth of the sizes (a smoke run; figures are noisier)
--icount         count the instructions per operation in this run, under valgrind's callgrind
                 (needs valgrind and the icount binary: cargo build --release -p lonet-bench --bins);
                 without it, the committed counts (benches/icount-stages.txt) are printed
--csv PATH       also write the table as CSV
--markdown PATH  also write the header, table and legend as Markdown
--svg PATH       also draw the figures as a bar chart (SVG)";

/// Parses the process's arguments; prints the usage and exits for `--help`
/// (status 0) or a wrong argument (status 2).
pub fn parse() -> Args {
    match parse_from(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{e}; try --help");
            std::process::exit(2);
        }
    }
}

/// The arguments after the program's name: `Ok(None)` for `--help`.
fn parse_from(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        csv: None,
        markdown: None,
        svg: None,
        quick: false,
        icount: false,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let slot = match arg.as_str() {
            "--csv" => &mut a.csv,
            "--markdown" => &mut a.markdown,
            "--svg" => &mut a.svg,
            "--quick" => {
                a.quick = true;
                continue;
            }
            "--icount" => {
                a.icount = true;
                continue;
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        };
        *slot = Some(it.next().ok_or_else(|| format!("{arg} needs a PATH"))?);
    }
    Ok(Some(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_from(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags_and_paths() {
        let a = parse(&["--quick", "--svg", "c.svg", "--csv", "t.csv"])
            .unwrap()
            .unwrap();
        assert!(a.quick);
        assert!(!a.icount);
        assert!(parse(&["--icount"]).unwrap().unwrap().icount);
        assert_eq!(a.svg.as_deref(), Some("c.svg"));
        assert_eq!(a.csv.as_deref(), Some("t.csv"));
        assert_eq!(a.markdown, None);
    }

    #[test]
    fn help_and_errors() {
        assert!(parse(&["--help"]).unwrap().is_none());
        assert_eq!(parse(&["--svg"]).err().unwrap(), "--svg needs a PATH");
        assert_eq!(
            parse(&["--fast"]).err().unwrap(),
            "unknown argument \"--fast\""
        );
    }
}
