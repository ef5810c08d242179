//! `loam sweep fit --points FILE.csv` on Chinchilla's Figure 4 points (from
//! ../shared/data/scaling, skipped with a message when absent) and on bad CSVs.
mod common;
use common::*;

/// Figure 4's IsoFLOP points as the CSV `sweep fit` reads (N as `params`).
fn fig4_csv(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let src = shared().join("scaling/chinchilla-isoflop-fig4.csv");
    let Ok(text) = std::fs::read_to_string(&src) else {
        eprintln!("skipped: {} is absent", src.display());
        return None;
    };
    let mut out = String::from("flops,params,tokens,loss,hex\n");
    for line in text.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        // flops_label,compute_flops,hex_color,n_params,loss,n_tokens
        out.push_str(&format!("{},{},{},{},{}\n", c[1], c[3], c[5], c[4], c[2]));
    }
    let p = dir.join("fig4.csv");
    std::fs::write(&p, out).ok()?;
    Some(p)
}

#[test]
fn fits_figure_4_and_writes_the_same_json_it_prints() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let Some(csv) = fig4_csv(tmp.path()) else { return Ok(()) };
    let out = tmp.path().join("fit/fig4.json");
    let o = run(&[
        "sweep",
        "fit",
        "--points",
        csv.to_str().ok_or("path")?,
        "--out",
        out.to_str().ok_or("path")?,
        "--resamples",
        "200",
    ]);
    ok(&o);
    let line = result_line(&o);
    assert_eq!(line["schema"], "loam.fit/1");
    assert_eq!(line["size"], "n", "params: the exponents are stated in N");
    assert_eq!(line["points"], 114);
    let a2 = line["a_approach2"].as_f64().ok_or("a2")?;
    assert!((a2 - 0.4813).abs() < 1e-3, "a = {a2}");
    let boot = &line["bootstrap"]["a2"];
    assert!(
        boot["lo"].as_f64() < Some(a2) && boot["hi"].as_f64() > Some(a2),
        "{boot}"
    );
    assert_eq!(line["bootstrap"]["config"]["resamples"], 200);
    assert_eq!(line["approach3"]["starts"], 4500);
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&out)?)?;
    assert_eq!(file, line);
    let err = stderr(&o);
    assert!(
        err.contains("approach 2: a = 0.4813") && err.contains("approach 3"),
        "{err}"
    );
    Ok(())
}

#[test]
fn bad_csv_exits_2_naming_the_row_or_column() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cases = [
        ("flops,m,loss\n1e12,1e5,3\n", "no `tokens` column"),
        ("flops,tokens,loss\n1e12,1e7,3\n", "no `m` or `params` column"),
        (
            "flops,m,tokens,loss\n1e12,1e5,1e7,3\n1e13,x,1e8,2.9\n",
            "row 3 column `m`",
        ),
        (
            "flops,m,tokens,loss\n1e12,1e5,1e7,3\n1e13,1e6,1e7,-1\n",
            "row 3 column `loss`",
        ),
        (
            "flops,m,tokens,loss\n1e12,1e5,1e7,3\n1e13,1e6,1e7,2.9\n",
            "at least 3 IsoFLOP budgets",
        ),
        ("", "empty file"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let p = tmp.path().join(format!("bad{i}.csv"));
        std::fs::write(&p, text)?;
        let o = run(&["sweep", "fit", "--points", p.to_str().ok_or("path")?]);
        assert_eq!(o.status.code(), Some(2), "{want}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(want) && stderr(&o).contains(&format!("bad{i}.csv")),
            "{want}: {}",
            stderr(&o)
        );
    }
    let o = run(&[
        "sweep",
        "fit",
        "--points",
        tmp.path().join("missing.csv").to_str().ok_or("path")?,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    Ok(())
}
