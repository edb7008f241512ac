"""HSC training on synthetic features: losses fall, runs are reproducible, ablations build, scoring works."""

import copy

import numpy as np
import pytest
import torch

from hscvad.hsc.train import StreamData, load_checkpoint, prepare_features, save_checkpoint, score_samples, train_stream

CFG = {
    "epochs": 12, "batch_size": 32, "lr": 0.01, "optimizer": "adam", "matmul_precision": "highest",
    "weight_decay": 1e-4, "tau": 0.5,
    "memory_momentum": 0.9, "rec_reduction": "mean", "feature_norm": "l2",
    "architecture": {"encoder_hidden": [32], "latent": 16, "decoder_hidden": [24], "block": "ours"},
    "ablation": {"scene_aware_encoder": True, "object_centric_decoder": True, "loss_scene": True,
                 "loss_object": True, "loss_classification": True, "loss_reconstruction": True},
}


def synthetic(n=150, d=12, db=6, seed=0):
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, 2, n)
    cls = rng.integers(0, 2, n)
    centres = rng.normal(size=(2, 2, d))
    feat = centres[scene, cls] + 0.1 * rng.normal(size=(n, d))
    sfeat = np.eye(db)[scene * 2] + 0.05 * rng.normal(size=(n, db))
    return StreamData(prepare_features(feat, "l2"), sfeat.astype(np.float32), scene, cls)


def test_training_lowers_every_loss_and_is_deterministic():
    data = synthetic()
    a = train_stream(data, CFG, n_scenes=2, seed=1)
    b = train_stream(data, CFG, n_scenes=2, seed=1)
    first, last = a.history[1], a.history[-1]  # contrast starts at epoch 2
    for k in ("rec", "lc", "scn", "obj"):
        assert k in last
        assert last[k] < first[k], (k, first[k], last[k])
    assert torch.equal(a.bank, b.bank)
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    assert torch.allclose(a.bank.norm(dim=1), torch.ones(len(data)), atol=1e-5)


def test_steps_per_epoch_ends_each_epoch_after_that_many_batches():
    data = synthetic(n=150)
    r = train_stream(data, {**CFG, "epochs": 1}, n_scenes=2, seed=0, steps_per_epoch=2)
    assert int((r.bank.norm(dim=1) > 0).sum()) == 2 * CFG["batch_size"]  # the first epoch fills what it saw
    full = train_stream(data, {**CFG, "epochs": 1}, n_scenes=2, seed=0)
    assert bool((full.bank.norm(dim=1) > 0).all())


def test_first_epoch_has_no_contrast_terms_and_one_scene_drops_classifier():
    data = synthetic()
    data.scene[:] = 0
    r = train_stream(data, {**CFG, "epochs": 2}, n_scenes=1, seed=0)
    assert "scn" not in r.history[0] and "obj" not in r.history[0]
    assert "obj" in r.history[1] and "scn" not in r.history[1] and "lc" not in r.history[1]
    assert r.model.classifier is None


@pytest.mark.parametrize("switch", ["scene_aware_encoder", "object_centric_decoder", "loss_reconstruction",
                                    "loss_object", "loss_scene", "loss_classification"])
def test_ablation_switches(switch):
    cfg = copy.deepcopy(CFG)
    cfg["epochs"] = 3
    cfg["ablation"][switch] = False
    data = synthetic(n=60)
    r = train_stream(data, cfg, n_scenes=2, seed=0)
    last = r.history[-1]
    dropped = {"loss_reconstruction": "rec", "loss_object": "obj", "loss_scene": "scn", "loss_classification": "lc"}
    if switch in dropped:
        assert dropped[switch] not in last
    if switch == "scene_aware_encoder":
        assert r.model.encoder[0].in_features == data.feat.shape[1]
    if switch == "object_centric_decoder":
        assert r.model.decoder[-1].out_features == data.feat.shape[1] + data.scene_feat.shape[1]
    s = score_samples(r.model, r.bank, data.feat[:5], data.scene_feat[:5], 0.5)
    assert s.shape == (5,) and np.isfinite(s).all()


def test_scores_rank_outliers_above_training_samples(tmp_path):
    data = synthetic()
    r = train_stream(data, {**CFG, "epochs": 30}, n_scenes=2, seed=0)
    normal = score_samples(r.model, r.bank, data.feat, data.scene_feat, 0.5)
    rng = np.random.default_rng(5)
    odd = prepare_features(rng.normal(size=(20, data.feat.shape[1])) * 3, "l2")
    abnormal = score_samples(r.model, r.bank, odd, data.scene_feat[:20], 0.5)
    assert np.median(abnormal) > np.percentile(normal, 90)
    # checkpoint round trip gives the same scores
    path = tmp_path / "m.pt"
    save_checkpoint(path, {"appearance": r}, {"hsc": CFG, "stream_cfg": {"appearance": CFG}, "n_scenes": 2})
    models, meta = load_checkpoint(path)
    m, bank = models["appearance"]
    assert np.allclose(score_samples(m, bank, data.feat, data.scene_feat, 0.5), normal, atol=1e-5)


def test_every_sample_reaches_the_bank_when_one_is_left_over():
    data = synthetic(n=65)  # 65 = 2 * 32 + 1
    r = train_stream(data, {**CFG, "epochs": 1}, n_scenes=2, seed=0)
    assert torch.allclose(r.bank.norm(dim=1), torch.ones(65), atol=1e-5)


def test_one_product_contrast_trains_as_the_definitions_do():
    """Training with the fused contrast gives the losses of training with Eqs. 3 and 5 as defined
    (the same batches and initial weights)."""
    rng = np.random.default_rng(3)
    data = synthetic(n=160)
    data.scene[:] = rng.integers(0, 4, len(data))  # four scenes
    cfg = {**CFG, "epochs": 4}
    fused = train_stream(data, cfg, n_scenes=4, seed=2)
    ref = train_stream(data, cfg, n_scenes=4, seed=2, reference_contrast=True)
    for a, b in zip(fused.history, ref.history):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], abs=1e-5), (a["epoch"], k)
    assert torch.allclose(fused.bank, ref.bank, atol=1e-4)
    assert torch.equal(fused.bank_scene, torch.from_numpy(data.scene.astype(np.int64)))


def test_fused_adam_takes_adams_steps():
    """hsc.optimizer adam_fused: torch's fused Adam, the same update as adam up to rounding (one
    step from the same gradients agrees to float32 precision) and just as reproducible."""
    from hscvad.hsc.train import _optimizer

    torch.manual_seed(0)
    weights = [torch.randn(300, 200), torch.randn(200)]
    grads = [torch.randn_like(w) for w in weights]
    out = {}
    for name in ("adam", "adam_fused"):
        params = [torch.nn.Parameter(w.clone()) for w in weights]
        opt = _optimizer({**CFG, "optimizer": name}, params)
        assert opt.defaults["fused"] is (True if name == "adam_fused" else None)
        for _ in range(3):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
        out[name] = torch.cat([p.detach().flatten() for p in params])
    assert torch.allclose(out["adam"], out["adam_fused"], rtol=0, atol=1e-5)
    assert (out["adam"] - torch.cat([w.flatten() for w in weights])).abs().max() > 0.02  # the steps moved them
    data = synthetic()
    cfg = {**CFG, "optimizer": "adam_fused"}
    a, b = train_stream(data, cfg, n_scenes=2, seed=1), train_stream(data, cfg, n_scenes=2, seed=1)
    assert a.history == b.history and torch.equal(a.bank, b.bank)
    assert a.history[-1]["rec"] < a.history[1]["rec"]


def test_matmul_precision_medium_trains_and_leaves_the_process_at_full_precision():
    """hsc.matmul_precision: medium (bfloat16 products where the hardware has them) trains to losses
    close to float32's, and the process's precision is restored for scoring."""
    data = synthetic()
    before = torch.get_float32_matmul_precision()
    full = train_stream(data, CFG, n_scenes=2, seed=1)
    low = train_stream(data, {**CFG, "matmul_precision": "medium"}, n_scenes=2, seed=1)
    assert torch.get_float32_matmul_precision() == before
    assert low.history[-1]["rec"] < low.history[1]["rec"]
    assert low.history[-1]["rec"] == pytest.approx(full.history[-1]["rec"], rel=0.25)
    with pytest.raises(ValueError, match="hsc.matmul_precision"):
        train_stream(data, {**CFG, "matmul_precision": "lowest"}, n_scenes=2, seed=1)
    assert torch.get_float32_matmul_precision() == before

def test_in_double_precision_the_fused_contrast_trains_to_the_definitions_losses():
    """Without float32 rounding (torch's default dtype float64, as bench/train_scale.py --float64
    runs), training with the fused contrast and with Eqs. 3 and 5 as defined give the same per-epoch
    losses and bank to ~1e-12: their float32 difference is rounding, not a different loss."""
    rng = np.random.default_rng(3)
    data = synthetic(n=160)
    data.scene[:] = rng.integers(0, 4, len(data))
    cfg = {**CFG, "epochs": 4}
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        fused = train_stream(data, cfg, n_scenes=4, seed=2)
        ref = train_stream(data, cfg, n_scenes=4, seed=2, reference_contrast=True)
    finally:
        torch.set_default_dtype(before)
    assert fused.bank.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in fused.model.parameters())
    for a, b in zip(fused.history, ref.history):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=0, abs=1e-12), (a["epoch"], k)
    assert torch.allclose(fused.bank, ref.bank, rtol=0, atol=1e-10)


def test_readout_temperature_from_products_kept_in_memory_equals_recomputing_them(monkeypatch):
    """The bisection divides the query x bank products, computed once, by each step's tau: the
    temperature is the one found by recomputing the products at every step (with and without
    leave-one-group-out masks), and it reads the target number of entries."""
    from hscvad.hsc import train as T

    g = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(300, 32, generator=g), dim=1)
    bank = torch.nn.functional.normalize(torch.randn(200, 32, generator=g), dim=1)
    qg, bg = torch.randint(0, 4, (300,), generator=g), torch.randint(0, 4, (200,), generator=g)
    for groups in ((None, None), (qg, bg)):
        kept = T.readout_temperature(z, bank, 5.0, *groups)
        monkeypatch.setattr(T, "PRODUCT_CACHE_ENTRIES", 0)
        recomputed = T.readout_temperature(z, bank, 5.0, *groups)
        monkeypatch.undo()
        assert kept == recomputed
        assert abs(float(T.effective_entries(z, bank, kept, *groups).median()) - 5.0) < 0.05
