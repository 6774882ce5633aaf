//! Tests over the shared corpus (skipped without `KUBESNAP_CORPUS`): a whole `gen-history` day
//! restored equal to its source, a 10-day series diffed against the truth, and every raw corpus
//! file restored to what Kubernetes reads from the original.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;

use super::common::{corpus, gen_history, idents, oracle_compare, strings, Env};

#[test]
fn a_whole_day_restores_equal_to_its_source() {
    let Some(corpus) = corpus("a_whole_day_restores_equal_to_its_source") else { return };
    let env = Env::new();
    let hist = env.path("hist");
    gen_history(&corpus, &hist, 0, 1, 7);
    let day = hist.join("day-00");
    env.snapshot(&day, "2026-01-01T00:00:00Z", &[]);
    let desired = env.path("desired");
    env.ok(&["restore", "latest", "--to-dir", desired.to_str().unwrap()]);
    let (same, report) = oracle_compare(&day, &desired, true);
    assert!(same, "desired state differs from the source:\n{report}");
    let full = env.path("full");
    env.ok(&["restore", "latest", "--to-dir", full.to_str().unwrap(), "--server-fields"]);
    let (same, report) = oracle_compare(&day, &full, false);
    assert!(same, "objects with server fields differ from the source:\n{report}");
    let check = env.json(&["check", "--read-data"]);
    assert_eq!(check["errors"], serde_json::json!([]));
}

#[test]
fn ten_days_diff_exactly_as_the_truth_says() {
    let Some(corpus) = corpus("ten_days_diff_exactly_as_the_truth_says") else { return };
    let env = Env::new();
    let hist = env.path("hist");
    let truth = gen_history(&corpus, &hist, 10, 2, 1);
    let days = truth.as_array().unwrap();
    let mut ids = Vec::new();
    for d in days {
        let dir = hist.join(d["dir"].as_str().unwrap());
        ids.push(env.snapshot(&dir, d["time"].as_str().unwrap(), &[]));
    }
    for i in 1..days.len() {
        let t = &days[i];
        let diff = env.json(&["diff", &ids[i - 1], &ids[i]]);
        for k in ["added", "removed", "modified"] {
            assert_eq!(idents(&diff[k]), strings(&t[k]), "day {i}: {k}");
        }
        let with_server = env.json(&["diff", &ids[i - 1], &ids[i], "--server-fields"]);
        let mut want = strings(&t["modified"]);
        want.extend(strings(&t["noise_only"]));
        want.sort();
        assert_eq!(idents(&with_server["modified"]), want, "day {i}: modified with --server-fields");
        // The snapshot's own counts agree with the truth too.
        let show = env.json(&["snapshots", "show", &ids[i]]);
        assert_eq!(show["counts"]["modified"].as_u64(), Some(t["modified"].as_array().unwrap().len() as u64));
    }
    // restore --at the middle day returns exactly that day's objects.
    let mid = &days[5];
    let out = env.path("mid");
    env.ok(&["restore", "--at", mid["time"].as_str().unwrap(), "--to-dir", out.to_str().unwrap(), "--server-fields"]);
    let (same, report) = oracle_compare(&hist.join(mid["dir"].as_str().unwrap()), &out, false);
    assert!(same, "restore --at the middle day:\n{report}");
    let check = env.json(&["check", "--read-data"]);
    assert_eq!(check["errors"], serde_json::json!([]));
}

/// Every corpus file, read by the oracle: path -> documents.
fn oracle_corpus(corpus: &Path) -> BTreeMap<String, Value> {
    let script = r#"
import json, os, sys, yaml
sys.path.insert(0, os.path.dirname(sys.argv[1]))
from k8s_yaml import Loader
out = {}
root = sys.argv[2]
for d, dirs, files in os.walk(root):
    dirs[:] = [x for x in dirs if x != "LICENSES"]
    for f in files:
        if not f.endswith((".yaml", ".yml", ".json")):
            continue
        p = os.path.join(d, f)
        try:
            with open(p, encoding="utf-8") as fh:
                out[os.path.relpath(p, root)] = [x for x in yaml.load_all(fh, Loader=Loader) if x is not None]
        except Exception as e:
            out[os.path.relpath(p, root)] = None
print(json.dumps(out))
"#;
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/k8s_yaml.py");
    let out =
        std::process::Command::new("python3").arg("-c").arg(script).arg(tool).arg(corpus).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("oracle JSON")
}

fn identity(v: &Value) -> Option<String> {
    let api = v.get("apiVersion")?.as_str()?;
    let group = api.split_once('/').map(|(g, _)| g).unwrap_or("");
    let kind = v.get("kind")?.as_str()?;
    let meta = v.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    (!name.is_empty()).then(|| format!("{group}/{kind}/{ns}/{name}"))
}

#[test]
fn every_raw_corpus_file_restores_as_kubernetes_reads_it() {
    let Some(corpus) = corpus("every_raw_corpus_file_restores_as_kubernetes_reads_it") else { return };
    let expected = oracle_corpus(&corpus);
    // Files that hold exactly one named object; batches without duplicate identities, each
    // batch a folder of links to the original files (the corpus is not copied).
    let mut batches: Vec<HashMap<String, String>> = Vec::new();
    for (rel, docs) in &expected {
        let Some(docs) = docs.as_array() else { continue };
        let [doc] = docs.as_slice() else { continue };
        let Some(id) = identity(doc) else { continue };
        match batches.iter_mut().find(|b| !b.contains_key(&id)) {
            Some(b) => {
                b.insert(id, rel.clone());
            }
            None => batches.push(HashMap::from([(id, rel.clone())])),
        }
    }
    let total: usize = batches.iter().map(HashMap::len).sum();
    assert!(total > 2000, "only {total} single-object files found in the corpus");
    let env = Env::new();
    let mut compared = 0;
    let mut rejected = Vec::new();
    for (n, batch) in batches.iter().enumerate() {
        let dir = env.path(&format!("batch{n}"));
        for (i, rel) in batch.values().enumerate() {
            let link = dir.join(format!("{i}-{}", Path::new(rel).file_name().unwrap().to_str().unwrap()));
            std::fs::create_dir_all(&dir).unwrap();
            std::os::unix::fs::symlink(corpus.join(rel), &link).unwrap();
        }
        let out = env.run(&["snapshot", "--from-dir", dir.to_str().unwrap(), "--skip-invalid", "--json", "-q"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for line in String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("skipped ") && !l.contains("invalid document(s)"))
        {
            rejected.push(line.to_owned());
        }
        let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"].as_str().unwrap().to_owned();
        let restored = env.path(&format!("restored{n}.yaml"));
        let text = env.ok(&["restore", &id, "--stdout", "--server-fields"]);
        std::fs::write(&restored, text).unwrap();
        let docs = super::common::oracle_read(&restored);
        let mut got: HashMap<String, Value> = HashMap::new();
        for d in docs.as_array().unwrap() {
            got.insert(identity(d).unwrap(), d.clone());
        }
        for (id, rel) in batch {
            let want = &expected[rel].as_array().unwrap()[0];
            match got.get(id) {
                Some(g) => {
                    assert_eq!(g, want, "{rel} does not restore to what Kubernetes reads from it");
                    compared += 1;
                }
                None => assert!(
                    rejected.iter().any(|r| r.contains(Path::new(rel).file_name().unwrap().to_str().unwrap())),
                    "{rel} ({id}) vanished without a warning"
                ),
            }
        }
    }
    // Rejections are rare and each is a document Kubernetes' strict reading rejects too
    // (duplicate keys).
    assert!(rejected.len() * 100 < total, "too many rejected files: {rejected:#?}");
    for r in &rejected {
        assert!(r.contains("more than once") || r.contains("duplicate"), "unexpected rejection: {r}");
    }
    eprintln!("compared {compared} corpus files; {} rejected: {rejected:#?}", rejected.len());
}
