"""What every backend of the paper's models shares: the shims that make the 2023-2024 OpenMMLab
releases run on NumPy 2 and current setuptools, locating a model's config inside its installed
package, checkpoint loading (checksum first, then ``torch.load(weights_only=True)``), and the
random-weights mode with its BatchNorm calibration (:class:`OpenMMLabBackend`)."""


import importlib.util
import logging
import sys
import types
from pathlib import Path

import numpy as np

from ..registry import Runtime, WeightsError, resolve_weights

log = logging.getLogger(__name__)


_SHIMS_DONE = False


def install_shims() -> None:
    """Make the 2023-2024 OpenMMLab releases import and run on NumPy 2 and current setuptools."""
    global _SHIMS_DONE
    if _SHIMS_DONE:
        return
    # NumPy 2 removed these aliases; mmaction's PoseCompact uses np.Inf, and mmdet / mmpose
    # evaluation helpers use np.in1d and np.trapz.
    for name, value in (("Inf", np.inf), ("in1d", np.isin), ("trapz", np.trapezoid)):
        if not hasattr(np, name):
            setattr(np, name, value)
    # mmaction2 1.2.0's wheel and sdist lack mmaction/models/localizers/drn/, which
    # localizers/__init__.py imports; DRN (temporal grounding) is not used here, so an empty
    # stand-in that fails loudly if anyone builds it lets `import mmaction.models` work.
    if "mmaction.models.localizers.drn" not in sys.modules and importlib.util.find_spec("mmaction") is not None:
        spec = importlib.util.find_spec("mmaction")
        drn_dir = Path(spec.origin).parent / "models" / "localizers" / "drn"
        if not drn_dir.exists():
            pkg = types.ModuleType("mmaction.models.localizers.drn")
            pkg.__path__ = []
            mod = types.ModuleType("mmaction.models.localizers.drn.drn")

            class DRN:  # noqa: D401 - stand-in
                def __init__(self, *a, **k):
                    raise ImportError("mmaction2 1.2.0 ships without models/localizers/drn; DRN is unavailable")

            mod.DRN = DRN
            sys.modules[pkg.__name__] = pkg
            sys.modules[mod.__name__] = mod
    _SHIMS_DONE = True


def require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"the paper's models need {', '.join(missing)}: run `bash scripts/setup.sh --openmmlab` "
            "(docs/paper-models.md), or use the offline preset (models: offline)"
        )


def prepare(package: str) -> None:
    """Check that ``package`` (and mmcv) is installed, apply the shims, register its modules."""
    require(package, "mmcv")
    install_shims()
    importlib.import_module(f"{package}.utils").register_all_modules(init_default_scope=True)


def mim_config(package: str, rel: str):
    """An mmengine Config from the configs shipped inside an installed OpenMMLab package."""
    from mmengine.config import Config

    spec = importlib.util.find_spec(package)
    path = Path(spec.origin).parent / ".mim" / "configs" / rel
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config not found in the installed {package}")
    return Config.fromfile(str(path))


def load_checkpoint(model, path, sha256: str | None, key: str, prefix: str | None = None) -> str:
    """Load published weights into ``model`` safely: the file must exist and match its checksum
    (a full sha256, or the 8-hex prefix that OpenMMLab puts in its file names); it is read with
    ``torch.load(weights_only=True)`` (or safetensors), never by unpickling arbitrary objects.
    Returns a description for logs; raises WeightsError naming ``key`` on any mismatch."""
    import torch

    p = resolve_weights(path, key, sha256 if sha256 and len(sha256) == 64 else None)
    if sha256 and len(sha256) < 64:
        from ..registry import sha256sum

        got = sha256sum(p)
        if not got.startswith(sha256.lower()):
            raise WeightsError(f"{key}: {p} has sha256 {got}, expected one starting with {sha256}")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(p))
    else:
        try:
            # OpenMMLab checkpoints keep some metadata as NumPy arrays: allow exactly those types
            with torch.serialization.safe_globals(_numpy_safe_globals()):
                ckpt = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:  # pickle with other objects: refuse rather than run its code
            raise WeightsError(f"{key}: {p} is not a plain weights file that loads with weights_only=True: {e}") from e
        state = ckpt.get("state_dict", ckpt.get("model", ckpt)) if isinstance(ckpt, dict) else ckpt
    if prefix:
        state = {k.removeprefix(prefix): v for k, v in state.items()}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise WeightsError(f"{key}: {p} lacks {len(result.missing_keys)} weights of the model, e.g. "
                           f"{result.missing_keys[:3]}; is it the checkpoint this backend expects?")
    if result.unexpected_keys:
        log.warning("%s: %d unused entries in %s (e.g. %s)", key, len(result.unexpected_keys), p,
                    result.unexpected_keys[:3])
    return f"{p.name}"


def _numpy_safe_globals() -> list:
    out = [np.ndarray, np.dtype]
    core = getattr(np, "_core", None) or np.core
    out.append(core.multiarray._reconstruct)
    out.append(core.multiarray.scalar)
    out += [type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "uint8", "bool")]
    return out


def torch_device(runtime: Runtime) -> str:
    import torch

    torch.set_num_threads(runtime.threads)
    return "cuda" if runtime.device == "cuda" and torch.cuda.is_available() else "cpu"


def load_or_init(model, cfg: dict, key: str) -> None:
    """Published weights when configured; otherwise the model's own initialisation scheme
    (``init_cfg``: what training starts from), not PyTorch's defaults, whose activations blow
    up through the untrained BatchNorm layers of these networks."""
    if cfg.get("weights"):
        load_checkpoint(model, cfg["weights"], cfg["sha256"], f"{key}.weights")
    else:
        import contextlib
        import io

        import torch

        torch.manual_seed(int(cfg["seed"]))
        mm_logger = None
        if importlib.util.find_spec("mmengine") is not None:
            from mmengine.logging import MMLogger

            mm_logger = MMLogger.get_current_instance()
            level = mm_logger.level
            mm_logger.setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # mmengine reports every layer's init scheme
                model.init_weights()
        finally:
            if mm_logger is not None:
                mm_logger.setLevel(level)
        model.eval()


class OpenMMLabBackend:
    """Random-weights mode (``weights: null``): before the first forward pass, every BatchNorm
    layer's statistics are set from what reaches it in that first input (layer by layer, each
    already normalised by the ones before), so that activations stay in range; otherwise an
    untrained detector's box regressions overflow and every box is invalid. Published weights are
    used as they are."""

    random = False
    _calibrated = False
    #: the conda environment of the rules that run it (envs/openmmlab.yaml)
    conda_env = "openmmlab"

    @classmethod
    def from_config(cls, cfg, runtime, key):
        return cls(cfg, runtime, key)

    def _config(self, package: str, cfg: dict):
        """The model's config ``cfg["config"]`` shipped inside the installed ``package``, the shims
        installed first; a backend edits it before :meth:`_init`."""
        prepare(package)
        return mim_config(package, cfg["config"])

    def _init(self, init: str, mcfg, cfg: dict, runtime: Runtime, key: str) -> None:
        """Build the model with ``init`` (``"module:function"``, e.g. ``"mmpose.apis:init_model"``) on
        the runtime's device, with the configured weights loaded (or in random-weights mode)."""
        module, _, name = init.partition(":")
        self.device = torch_device(runtime)
        self._use(getattr(importlib.import_module(module), name)(mcfg, None, device=self.device), cfg, key)

    def _use(self, model, cfg: dict, key: str) -> None:
        """Keep ``model``, with the configured weights loaded, or initialised (random mode)."""
        self.model = model
        self.weights = weights_desc(cfg)
        load_or_init(model, cfg, key)
        self.random = not cfg.get("weights")

    def _calibrate_once(self, forward) -> None:
        if not self.random or self._calibrated:
            return
        import torch

        def set_stats(module, inputs):
            x = inputs[0]
            if x.numel() // x.shape[1] > 1:  # not a 1x1 map of one sample (e.g. ASPP image pooling)
                dims = [0, *range(2, x.dim())]
                module.running_mean.copy_(x.mean(dims))
                module.running_var.copy_(x.var(dims, unbiased=False))

        bns = [m for m in self.model.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None]
        hooks = [m.register_forward_pre_hook(set_stats) for m in bns]
        try:
            with torch.no_grad():
                forward()
        finally:
            for h in hooks:
                h.remove()
        self._calibrated = True


def weights_desc(cfg) -> str:
    return Path(cfg["weights"]).name if cfg.get("weights") else "RANDOM WEIGHTS"
