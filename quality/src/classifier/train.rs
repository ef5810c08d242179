//! fastText `supervised` training and quantization, through the C++ fastText that the
//! `fasttext` crate 0.7.8 compiles (its `cfasttext-sys` C API). The crate's own `Args`
//! cannot set `-seed` or a fractional `-t`, so the arguments are handed to fastText's own
//! parser as a command line, built here from validated settings.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ClassifierError;

/// fastText's loss functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    Softmax,
    Hs,
    Ns,
    Ova,
}

impl Loss {
    fn as_str(self) -> &'static str {
        match self {
            Self::Softmax => "softmax",
            Self::Hs => "hs",
            Self::Ns => "ns",
            Self::Ova => "ova",
        }
    }
}

/// Every argument of `fasttext supervised`. Defaults are DCLM's recipe for its fastText
/// quality filter: lr 0.1, dim 100, ws 5, epoch 5, minCount 1, wordNgrams 2, softmax,
/// bucket 2M; the rest are fastText's own defaults, except `thread` = 1 (the only setting
/// under which fastText's training is deterministic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FastTextArgs {
    pub lr: f64,
    pub dim: u32,
    pub ws: u32,
    pub epoch: u32,
    pub min_count: u32,
    pub min_count_label: u32,
    pub neg: u32,
    pub word_ngrams: u32,
    pub loss: Loss,
    /// Hash buckets for word n-grams: the input matrix has (words + bucket) × dim floats,
    /// 800 MB at DCLM's 2M × 100.
    pub bucket: u32,
    pub minn: u32,
    pub maxn: u32,
    /// More than 1 trains faster but lock-free (Hogwild): the model then differs from run
    /// to run.
    pub thread: u32,
    pub lr_update_rate: u32,
    /// Sampling threshold.
    pub t: f64,
    pub seed: u32,
    /// Optional `.vec` file of pretrained word vectors (its dimension must be `dim`).
    pub pretrained_vectors: Option<PathBuf>,
}

impl Default for FastTextArgs {
    fn default() -> Self {
        Self {
            lr: 0.1,
            dim: 100,
            ws: 5,
            epoch: 5,
            min_count: 1,
            min_count_label: 0,
            neg: 5,
            word_ngrams: 2,
            loss: Loss::Softmax,
            bucket: 2_000_000,
            minn: 0,
            maxn: 0,
            thread: 1,
            lr_update_rate: 100,
            t: 1e-4,
            seed: 0,
            pretrained_vectors: None,
        }
    }
}

impl FastTextArgs {
    pub fn validate(&self) -> Result<(), ClassifierError> {
        let bad = |m: String| Err(ClassifierError::Config(m));
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("quality.fasttext.lr = {}: must be > 0", self.lr));
        }
        if !(self.t > 0.0 && self.t.is_finite()) {
            return bad(format!("quality.fasttext.t = {}: must be > 0", self.t));
        }
        for (name, v, min) in [
            ("dim", self.dim, 1),
            ("ws", self.ws, 1),
            ("epoch", self.epoch, 1),
            ("min_count", self.min_count, 1),
            ("neg", self.neg, 1),
            ("word_ngrams", self.word_ngrams, 1),
            ("thread", self.thread, 1),
            ("lr_update_rate", self.lr_update_rate, 1),
        ] {
            if v < min {
                return bad(format!("quality.fasttext.{name} = {v}: must be at least {min}"));
            }
        }
        for (name, v) in [("dim", self.dim), ("bucket", self.bucket), ("thread", self.thread)] {
            if v > i32::MAX as u32 {
                return bad(format!("quality.fasttext.{name} = {v} is too large"));
            }
        }
        if self.maxn > 0 && self.minn > self.maxn {
            return bad(format!(
                "quality.fasttext.minn = {} exceeds maxn = {}",
                self.minn, self.maxn
            ));
        }
        Ok(())
    }

    /// fastText's command line for these arguments (after `fasttext supervised`).
    fn command_line(&self, input: &str, output: &str) -> Result<Vec<String>, ClassifierError> {
        let mut v: Vec<String> = vec!["fasttext".into(), "supervised".into()];
        let mut push = |k: &str, val: String| {
            v.push(format!("-{k}"));
            v.push(val);
        };
        push("input", input.into());
        push("output", output.into());
        push("lr", self.lr.to_string());
        push("dim", self.dim.to_string());
        push("ws", self.ws.to_string());
        push("epoch", self.epoch.to_string());
        push("minCount", self.min_count.to_string());
        push("minCountLabel", self.min_count_label.to_string());
        push("neg", self.neg.to_string());
        push("wordNgrams", self.word_ngrams.to_string());
        push("loss", self.loss.as_str().into());
        push("bucket", self.bucket.to_string());
        push("minn", self.minn.to_string());
        push("maxn", self.maxn.to_string());
        push("thread", self.thread.to_string());
        push("lrUpdateRate", self.lr_update_rate.to_string());
        push("t", format!("{:e}", self.t));
        push("seed", self.seed.to_string());
        push("label", "__label__".into());
        push("verbose", "0".into());
        if let Some(p) = &self.pretrained_vectors {
            let p = p.to_str().ok_or_else(|| {
                ClassifierError::Config("quality.fasttext.pretrained_vectors: path is not UTF-8".into())
            })?;
            push("pretrainedVectors", p.into());
        }
        Ok(v)
    }

    /// Bytes of the input matrix fastText will allocate for `words` distinct words.
    pub fn input_matrix_bytes(&self, words: u64) -> u64 {
        (words + u64::from(self.bucket)) * u64::from(self.dim) * 4
    }
}

/// `fasttext quantize` settings: product quantization of the trained model into `.ftz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuantizeArgs {
    /// Write the quantized `.ftz` beside the `.bin` (it is used for scoring only if it is
    /// smaller and loses at most `max_auc_loss` of held-out ROC-AUC).
    pub enabled: bool,
    /// Keep only this many rows of the input matrix (0: all).
    pub cutoff: u64,
    /// Size of each sub-vector.
    pub dsub: u32,
    /// Quantize the norms apart.
    pub qnorm: bool,
    /// Quantize the output matrix too.
    pub qout: bool,
    /// Retrain the kept rows after a cutoff (re-reads the training file).
    pub retrain: bool,
    pub max_auc_loss: f64,
}

impl Default for QuantizeArgs {
    fn default() -> Self {
        Self {
            enabled: true,
            cutoff: 0,
            dsub: 2,
            qnorm: true,
            qout: false,
            retrain: false,
            max_auc_loss: 0.005,
        }
    }
}

impl QuantizeArgs {
    pub fn validate(&self) -> Result<(), ClassifierError> {
        if self.dsub == 0 || self.dsub > 1 << 16 {
            return Err(ClassifierError::Config(format!(
                "quality.quantize.dsub = {}: use 1 to 65536 (fastText's default is 2)",
                self.dsub
            )));
        }
        if !(0.0..=1.0).contains(&self.max_auc_loss) {
            return Err(ClassifierError::Config(format!(
                "quality.quantize.max_auc_loss = {}: use 0 to 1",
                self.max_auc_loss
            )));
        }
        Ok(())
    }
}

/// A fastText model handle and its argument block, freed on drop.
struct Handle {
    ft: *mut cfasttext_sys::fasttext_t,
    args: *mut cfasttext_sys::fasttext_args_t,
}

impl Handle {
    fn new(argv: &[String]) -> Result<Self, String> {
        let owned: Vec<CString> = argv
            .iter()
            .map(|s| CString::new(s.as_str()).map_err(|_| format!("argument {s:?} holds a NUL byte")))
            .collect::<Result<_, _>>()?;
        let mut ptrs: Vec<*mut c_char> = owned.iter().map(|s| s.as_ptr().cast_mut()).collect();
        let argc = i32::try_from(ptrs.len()).map_err(|_| "too many arguments".to_string())?;
        // SAFETY: `cft_args_new` returns a fresh heap `Args`; `cft_args_parse` copies each
        // NUL-terminated string of `ptrs` (alive in `owned` for the call) into it and never
        // writes through them. fastText's parser exits the process on an unknown flag or
        // value, which `FastTextArgs::validate` and `command_line` rule out.
        let args = unsafe {
            let args = cfasttext_sys::cft_args_new();
            cfasttext_sys::cft_args_parse(args, argc, ptrs.as_mut_ptr());
            args
        };
        // SAFETY: returns a fresh, empty FastText object owned by this handle.
        let ft = unsafe { cfasttext_sys::cft_fasttext_new() };
        Ok(Self { ft, args })
    }

    /// Calls a C API function that reports C++ `invalid_argument` through an error string.
    fn call(&self, f: impl FnOnce(*mut *mut c_char)) -> Result<(), String> {
        let mut err: *mut c_char = std::ptr::null_mut();
        f(&mut err);
        if err.is_null() {
            return Ok(());
        }
        // SAFETY: a non-null `err` is a `strdup`ed C string owned by us, freed once here.
        let msg = unsafe {
            let m = CStr::from_ptr(err).to_string_lossy().into_owned();
            cfasttext_sys::cft_str_free(err);
            m
        };
        Err(msg)
    }

    fn save(&self, dest: &Path) -> Result<(), String> {
        let p = c_path(dest)?;
        // SAFETY: `self.ft` is a live handle holding a trained model; `p` outlives the call.
        self.call(|err| unsafe { cfasttext_sys::cft_fasttext_save_model(self.ft, p.as_ptr(), err) })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: both pointers came from their `_new` functions and are freed once.
        unsafe {
            cfasttext_sys::cft_fasttext_free(self.ft);
            cfasttext_sys::cft_args_free(self.args);
        }
    }
}

fn c_path(p: &Path) -> Result<CString, String> {
    let s = p.to_str().ok_or("path is not UTF-8")?;
    CString::new(s).map_err(|_| "path holds a NUL byte".to_string())
}

/// Trains a supervised model on `input` (one `__label__x text` line per example) and
/// writes it to `output` (a `.bin`). The caller makes sure both labels occur.
pub fn train_supervised(args: &FastTextArgs, input: &Path, output: &Path) -> Result<(), ClassifierError> {
    args.validate()?;
    let fail = |why: String| ClassifierError::Train {
        input: input.to_owned(),
        why,
    };
    let inp = input.to_str().ok_or_else(|| fail("path is not UTF-8".into()))?;
    let out = output.with_extension("");
    let out = out.to_str().ok_or_else(|| fail("output path is not UTF-8".into()))?;
    let h = Handle::new(&args.command_line(inp, out)?).map_err(fail)?;
    // fastText's parser reads -lr with `stof`; the exact double is what Python's binding
    // trains with, and every weight depends on it.
    // SAFETY: `h.args` is a live argument block.
    unsafe { cfasttext_sys::cft_args_set_lr(h.args, args.lr) };
    // SAFETY: `h.ft` and `h.args` are live handles; training reads the input file named
    // in the arguments and writes only into `h.ft`.
    h.call(|err| unsafe { cfasttext_sys::cft_fasttext_train(h.ft, h.args, err) })
        .map_err(fail)?;
    h.save(output).map_err(fail)?;
    exact_t(output, args.t).map_err(|e| fail(format!("writing {}: {e}", output.display())))
}

/// Byte offset of the sampling threshold `t` (an f64) in a model file: after the magic,
/// the version and twelve i32 arguments.
const T_OFFSET: u64 = 4 * 14;

/// fastText's parser reads `-t` as an f32 and the C API can only set it as an integer,
/// so the header holds 9.99999974738e-05 for 1e-4. Supervised training never samples
/// words by `t`, so only the header differs from a model Python's binding trains; the
/// exact double is written back so the files are the same bytes.
fn exact_t(model: &Path, t: f64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(model)?;
    let mut head = [0u8; 4];
    f.read_exact(&mut head)?;
    if i32::from_le_bytes(head) != 793_712_314 {
        return Err(std::io::Error::other("not a fastText model"));
    }
    f.seek(SeekFrom::Start(T_OFFSET))?;
    f.write_all(&t.to_le_bytes())?;
    f.sync_all()
}

/// Quantizes the supervised model `bin` into `ftz` (`train` is the training file, read
/// again only when `retrain` is set).
pub fn quantize(
    fasttext: &FastTextArgs,
    q: &QuantizeArgs,
    bin: &Path,
    train: &Path,
    ftz: &Path,
) -> Result<(), ClassifierError> {
    q.validate()?;
    let fail = |why: String| ClassifierError::Train {
        input: bin.to_owned(),
        why: format!("quantizing: {why}"),
    };
    let inp = train.to_str().ok_or_else(|| fail("path is not UTF-8".into()))?;
    let out = ftz.with_extension("");
    let out = out.to_str().ok_or_else(|| fail("output path is not UTF-8".into()))?;
    let mut argv = vec![
        "fasttext".to_string(),
        "quantize".into(),
        "-input".into(),
        inp.into(),
        "-output".into(),
        out.into(),
        "-dsub".into(),
        q.dsub.to_string(),
        "-cutoff".into(),
        q.cutoff.to_string(),
        "-epoch".into(),
        fasttext.epoch.to_string(),
        "-lr".into(),
        fasttext.lr.to_string(),
        "-thread".into(),
        fasttext.thread.to_string(),
        "-verbose".into(),
        "0".into(),
    ];
    // Boolean flags take no value in fastText's parser.
    for (flag, on) in [("-qnorm", q.qnorm), ("-qout", q.qout), ("-retrain", q.retrain)] {
        if on {
            argv.push(flag.into());
        }
    }
    let h = Handle::new(&argv).map_err(fail)?;
    // SAFETY: `h.args` is a live argument block (the exact lr, as in training).
    unsafe { cfasttext_sys::cft_args_set_lr(h.args, fasttext.lr) };
    let p = c_path(bin).map_err(fail)?;
    // SAFETY: live handles; `p` outlives the calls; quantize reads only `h.args`.
    h.call(|err| unsafe { cfasttext_sys::cft_fasttext_load_model(h.ft, p.as_ptr(), err) })
        .map_err(fail)?;
    h.call(|err| unsafe { cfasttext_sys::cft_fasttext_quantize(h.ft, h.args, err) })
        .map_err(fail)?;
    h.save(ftz).map_err(fail)
}
