//! AdamW as the paper runs it, written over Burn's module visitor/mapper rather than taken
//! from `burn-optim`, because the paper needs what that one does not give directly:
//! gradients summed over micro-batches, clipping by the *global* norm (Burn's clips each
//! tensor alone), no weight decay on norm gains (tensors of rank 1), and optimizer state
//! keyed by parameter path so checkpoints are plain, named safetensors.
//!
//! Every parameter is handled flattened to rank 1 (`[numel]`); state lives on the inner
//! (non-autodiff) backend.
use std::collections::BTreeMap;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use serde::{Deserialize, Serialize};

/// Optimizer settings (the `[train.optim]` table).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 = off).
    pub clip_norm: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            clip_norm: 1.0,
        }
    }
}

/// Tracks `a.b.0.c` paths through `enter_module`/`exit_module`.
#[derive(Debug, Default)]
struct PathStack(Vec<String>);

impl PathStack {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_owned());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn path(&self) -> String {
        self.0.join(".")
    }
}

/// Gradients summed over the micro-batches of one optimizer step, by parameter path.
pub struct GradSum<B: Backend> {
    sums: BTreeMap<String, Tensor<B, 1>>,
}

impl<B: Backend> std::fmt::Debug for GradSum<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradSum").field("params", &self.sums.len()).finish()
    }
}

impl<B: Backend> Default for GradSum<B> {
    fn default() -> Self {
        Self { sums: BTreeMap::new() }
    }
}

struct Accumulate<'a, B: AutodiffBackend> {
    grads: &'a B::Gradients,
    sums: &'a mut BTreeMap<String, Tensor<B::InnerBackend, 1>>,
    path: PathStack,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Accumulate<'_, B> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(g) = param.val().grad(self.grads) else { return };
        let n = g.shape().num_elements();
        let g = g.reshape([n]);
        let key = self.path.path();
        let sum = match self.sums.remove(&key) {
            Some(s) => s + g,
            None => g,
        };
        self.sums.insert(key, sum);
    }
}

impl<B: Backend> GradSum<B> {
    /// Adds the gradients of `module` found in `grads` (one micro-batch's backward).
    pub fn add<A, M>(&mut self, module: &M, grads: &A::Gradients)
    where
        A: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<A>,
    {
        let mut v = Accumulate::<A> {
            grads,
            sums: &mut self.sums,
            path: PathStack::default(),
        };
        module.visit(&mut v);
    }

    /// Global L2 norm of the summed gradients scaled by `scale` (one host sync).
    pub fn norm(&self, scale: f64) -> f64 {
        let mut total: Option<Tensor<B, 1>> = None;
        for g in self.sums.values() {
            let sq = (g.clone() * scale).powi_scalar(2).sum();
            total = Some(match total {
                Some(t) => t + sq,
                None => sq,
            });
        }
        total.map_or(0.0, |t| f64::from(t.into_scalar().elem::<f32>()).sqrt())
    }
}

/// First and second moments of one parameter, flattened.
pub struct Moments<B: Backend> {
    pub m: Tensor<B, 1>,
    pub v: Tensor<B, 1>,
}

/// AdamW state: step count and moments by parameter path.
pub struct AdamW<B: Backend> {
    pub cfg: OptimConfig,
    /// Optimizer steps taken.
    pub step: u64,
    pub moments: BTreeMap<String, Moments<B>>,
}

impl<B: Backend> std::fmt::Debug for AdamW<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdamW")
            .field("step", &self.step)
            .field("params", &self.moments.len())
            .finish()
    }
}

struct Update<'a, B: AutodiffBackend> {
    opt: &'a mut AdamW<B::InnerBackend>,
    sums: &'a BTreeMap<String, Tensor<B::InnerBackend, 1>>,
    grad_scale: f64,
    lr: f64,
    path: PathStack,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Update<'_, B> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let key = self.path.path();
        let Some(g) = self.sums.get(&key) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let c = &self.opt.cfg;
        let t = self.opt.step as i32 + 1;
        let shape = tensor.shape();
        let w = tensor.inner().reshape([shape.num_elements()]);
        let g = g.clone() * self.grad_scale;
        let (m, v) = match self.opt.moments.remove(&key) {
            Some(Moments { m, v }) => (
                m * c.beta1 + g.clone() * (1.0 - c.beta1),
                v * c.beta2 + g.powi_scalar(2) * (1.0 - c.beta2),
            ),
            None => (g.clone() * (1.0 - c.beta1), g.powi_scalar(2) * (1.0 - c.beta2)),
        };
        let m_hat = m.clone() / (1.0 - c.beta1.powi(t));
        let v_hat = v.clone() / (1.0 - c.beta2.powi(t));
        // Decoupled weight decay, on matrices only: norm gains (rank 1) are not decayed.
        let decay = if D >= 2 { 1.0 - self.lr * c.weight_decay } else { 1.0 };
        let w = w * decay - m_hat / (v_hat.sqrt() + c.eps) * self.lr;
        self.opt.moments.insert(key, Moments { m, v });
        let w = Tensor::<B, D>::from_inner(w.reshape(shape)).require_grad();
        Param::from_mapped_value(id, w, mapper)
    }
}

impl<B: Backend> AdamW<B> {
    pub fn new(cfg: OptimConfig) -> Self {
        Self {
            cfg,
            step: 0,
            moments: BTreeMap::new(),
        }
    }

    /// One step: gradients are `sums / micro_batches`, clipped to the global norm; returns
    /// the updated module and the pre-clip global norm.
    pub fn step<A, M>(&mut self, module: M, grads: GradSum<B>, micro_batches: usize, lr: f64) -> (M, f64)
    where
        A: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<A>,
    {
        let mean = 1.0 / micro_batches.max(1) as f64;
        let norm = grads.norm(mean);
        let clip = if self.cfg.clip_norm > 0.0 && norm > self.cfg.clip_norm {
            self.cfg.clip_norm / (norm + 1e-6)
        } else {
            1.0
        };
        let mut u = Update::<A> {
            opt: self,
            sums: &grads.sums,
            grad_scale: mean * clip,
            lr,
            path: PathStack::default(),
        };
        let module = module.map(&mut u);
        self.step += 1;
        (module, norm)
    }
}

/// Named float tensors of a module (path → flattened values and shape), for checkpoints.
pub struct Collect {
    path: PathStack,
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Collect {
    pub fn of<B: Backend, M: Module<B>>(module: &M) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
        let mut c = Self {
            path: PathStack::default(),
            tensors: BTreeMap::new(),
        };
        module.visit(&mut c);
        c.tensors
    }
}

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let shape = t.dims().to_vec();
        let values = t.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
        self.tensors.insert(self.path.path(), (shape, values));
    }
}

/// Replaces a module's float parameters by named values (checkpoint load); records the
/// first mismatch instead of panicking.
pub struct Load<'a> {
    path: PathStack,
    tensors: &'a BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    pub problem: Option<String>,
    pub loaded: usize,
}

impl<'a> Load<'a> {
    pub fn new(tensors: &'a BTreeMap<String, (Vec<usize>, Vec<f32>)>) -> Self {
        Self {
            path: PathStack::default(),
            tensors,
            problem: None,
            loaded: 0,
        }
    }
}

impl<B: Backend> ModuleMapper<B> for Load<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let key = self.path.path();
        let shape = tensor.dims().to_vec();
        match self.tensors.get(&key) {
            Some((s, v)) if *s == shape && v.len() == shape.iter().product::<usize>() => {
                let data = burn::tensor::TensorData::new(v.clone(), shape);
                let t = Tensor::<B, D>::from_data(data, &tensor.device());
                let t = if tensor.is_require_grad() { t.require_grad() } else { t };
                self.loaded += 1;
                Param::from_mapped_value(id, t, mapper)
            }
            found => {
                if self.problem.is_none() {
                    self.problem = Some(match found {
                        Some((s, _)) => format!("{key}: checkpoint shape {s:?}, model shape {shape:?}"),
                        None => format!("{key}: missing from the checkpoint"),
                    });
                }
                Param::from_mapped_value(id, tensor, mapper)
            }
        }
    }
}
