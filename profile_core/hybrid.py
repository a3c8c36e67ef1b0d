"""Hybrid heads: each head's logits blend the multi-task net's with a per-task gradient-boosted tree ensemble's,
weighted per head on the validation split (``TrainConfig.hybrid = "blend"``).

On tabular heads where trees still win (a credit limit, a repayment class), the blend keeps what each model
does best. LightGBM is fitted per task on the train split of the matrix the net reads (standardised numbers,
missing-value indicators and one-hot columns; not the piecewise-linear bin columns, which add nothing a split
cannot find), early-stopped on the validation split, and turned into tensors (``nets.TreeEnsemble``): the
bundle stays one safetensors file and every scorer runs the blend unchanged. The net's weight ``w`` per head
is the one of 0, 0.05, …, 1 with the best validation score (RMSE, AUC, macro-F1: the per-head selection
metric; ties keep the larger ``w``). The blend is linear in the logits, so a head's SHAP values are
``w·DeepSHAP(net) + (1 − w)·TreeSHAP(trees)`` against the same background (``explain.HeadExplainer``).
"""

from __future__ import annotations

from dataclasses import replace

import lightgbm as lgb
import numpy as np
import torch

from profile_core.baselines import LGBM_PARAMS
from profile_core.features import PLE_SEP
from profile_core.nets import Blend, MultiTaskNet, TreeEnsemble, build_net
from profile_core.tasks import TaskSpec, labelled, selection_score
from profile_core.train import _output

# the LightGBM baseline's settings (profile_core.baselines) at twice its learning rate: the blend is the app's
# default, and half the rounds keep training within 2× the baseline's time (Taiwan: the blend's validation
# scores move by < 0.003, benchmarks/README)
GBDT_PARAMS = {**{k: v for k, v in LGBM_PARAMS.items() if k != "n_estimators"}, "learning_rate": 0.1}
ROUNDS, EARLY_STOPPING = LGBM_PARAMS["n_estimators"], 30
WEIGHTS = np.round(np.linspace(1.0, 0.0, 21), 2)  # the net's share, tried from the net alone down
# a share chosen on fewer labelled validation rows (or fewer of a class) would follow noise: the net stays alone
MIN_VALIDATION_ROWS, MIN_CLASS_ROWS = 100, 10


def too_few(task: TaskSpec, y_val: np.ndarray) -> str:
    """Why the validation labels of ``task`` cannot choose a blend ("" when they can)."""
    has = labelled(task, y_val)
    if has.sum() < MIN_VALIDATION_ROWS:
        return f"{int(has.sum())} labelled validation rows < {MIN_VALIDATION_ROWS}"
    if task.kind != "regression":
        counts = np.bincount(y_val[has].astype(int), minlength=task.n_classes if task.kind == "multiclass" else 2)
        if counts.min() < MIN_CLASS_ROWS:
            return f"a class has {int(counts.min())} labelled validation rows < {MIN_CLASS_ROWS}"
    return ""


def tree_inputs(names: list[str]) -> list[int]:
    """Columns of the net's input matrix the trees split on: all but the piecewise-linear bin columns."""
    return [j for j, name in enumerate(names) if PLE_SEP not in name]


def _objective(task: TaskSpec) -> dict:
    if task.kind == "regression":
        return {"objective": "regression"}
    if task.kind == "binary":
        return {"objective": "binary"}
    return {"objective": "multiclass", "num_class": task.n_classes}


def fit_trees(X: np.ndarray, y: np.ndarray, task: TaskSpec, split: dict[str, np.ndarray], columns: list[int],
              *, seed: int, threads: int) -> lgb.Booster:
    """LightGBM for one task on its labelled train rows (``y``: the task's encoded labels, regression
    standardised), early-stopped on its labelled validation rows."""
    has = labelled(task, y)
    train, val = (split[k][has[split[k]]] for k in ("train", "val"))
    params = {**GBDT_PARAMS, **_objective(task), "seed": seed, "num_threads": max(threads, 1)}
    data = lgb.Dataset(X[np.ix_(train, columns)], y[train], params={"verbose": -1})
    valid = lgb.Dataset(X[np.ix_(val, columns)], y[val], reference=data)
    return lgb.train(params, data, num_boost_round=ROUNDS, valid_sets=[valid],
                     callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False)])


def tree_arrays(booster: lgb.Booster, out_dim: int, columns: list[int]) -> dict[str, np.ndarray]:
    """The booster's trees (up to its best iteration) as ``nets.TreeEnsemble`` buffers: nodes in pre-order,
    tree by tree; a leaf points to itself. Tree i adds to output ``i % out_dim`` (LightGBM's multiclass
    order). ``depth``: the longest root-to-leaf path."""
    dump = booster.dump_model(num_iteration=booster.best_iteration or None)
    feature, threshold, left, right, count, values, roots = [], [], [], [], [], [], []
    depth = 1

    def add(node: dict, out: int, level: int) -> int:
        nonlocal depth
        i = len(feature)
        feature.append(0)
        threshold.append(np.inf)
        left.append(i)
        right.append(i)
        row = np.zeros(out_dim)
        if "leaf_value" in node:
            row[out] = node["leaf_value"]
            count.append(float(node.get("leaf_count", 0)))
            values.append(row)
            depth = max(depth, level)
            return i
        if node["decision_type"] != "<=":  # only numeric splits: the matrix has no categorical columns
            raise ValueError(f"unsupported tree split {node['decision_type']!r}")
        feature[i], threshold[i] = columns[node["split_feature"]], float(node["threshold"])
        count.append(float(node.get("internal_count", 0)))
        values.append(row)
        left[i] = add(node["left_child"], out, level + 1)
        right[i] = add(node["right_child"], out, level + 1)
        return i

    for k, tree in enumerate(dump["tree_info"]):
        roots.append(add(tree["tree_structure"], k % out_dim, 0))
    return {"feature": np.asarray(feature, np.int64), "threshold": np.asarray(threshold, np.float64),
            "left": np.asarray(left, np.int64), "right": np.asarray(right, np.int64),
            "value": np.asarray(values, np.float32).reshape(-1, out_dim), "count": np.asarray(count, np.float64),
            "roots": np.asarray(roots, np.int64), "depth": np.asarray(depth)}


def load_trees(module: TreeEnsemble, arrays: dict[str, np.ndarray], weight: float) -> None:
    with torch.no_grad():
        for name in ("feature", "threshold", "left", "right", "value", "count", "roots"):
            getattr(module, name).copy_(torch.as_tensor(arrays[name]))
        module.weight.fill_(weight)


def choose_weight(task: TaskSpec, y_raw: np.ndarray, net_logits: np.ndarray, tree_logits: np.ndarray
                  ) -> tuple[float, dict[float, float]]:
    """The net's share with the best validation score, and the score of every share tried."""
    scores = {}
    for w in WEIGHTS:
        readable = _output(task, torch.from_numpy(w * net_logits + (1 - w) * tree_logits)).numpy()
        scores[float(w)] = selection_score(task, y_raw, readable)
    finite = {w: s for w, s in scores.items() if np.isfinite(s)}
    best = min(finite, key=lambda w: (finite[w], -w)) if finite else 1.0
    return best, scores


def blend(net: MultiTaskNet, arch: str, X: np.ndarray, encoded: dict[str, np.ndarray], raw: dict[str, np.ndarray],
          split: dict[str, np.ndarray], tasks: list[TaskSpec], names: list[str], *, seed: int, threads: int
          ) -> tuple[Blend, dict[str, dict]]:
    """``net`` with every head blended with its own LightGBM (see the module doc); and per head what was
    chosen: ``weight`` (the net's share), ``trees``, ``rounds`` and the validation ``scores`` per share, or
    why the head kept the net alone (``skipped``: too few validation labels to choose a share)."""
    columns = tree_inputs(names)
    val = split["val"]
    device = next(net.parameters()).device
    with torch.no_grad():
        net_val = {t: v.double().cpu().numpy() for t, v in net.eval()(torch.as_tensor(X[val]).to(device)).items()}
    arrays, weights, report = {}, {}, {}
    for task in tasks:
        if why := too_few(task, encoded[task.name][val]):
            report[task.name] = {"weight": 1.0, "trees": 0, "rounds": 0, "validation": {}, "skipped": why}
            continue
        booster = fit_trees(X, encoded[task.name], task, split, columns, seed=seed, threads=threads)
        arrays[task.name] = tree_arrays(booster, task.out_dim, columns)
        tree_val = booster.predict(X[np.ix_(val, columns)], num_iteration=booster.best_iteration or None,
                                   raw_score=True).reshape(len(val), task.out_dim)
        weights[task.name], scores = choose_weight(task, raw[task.name][val], net_val[task.name], tree_val)
        report[task.name] = {"weight": weights[task.name], "trees": len(arrays[task.name]["roots"]),
                             "rounds": int(booster.best_iteration or booster.current_iteration()),
                             "validation": scores}
    if not arrays:  # no head could choose a blend
        return net, report
    shapes = {t: (len(a["feature"]), len(a["roots"]), int(a["depth"])) for t, a in arrays.items()}
    out = build_net(arch, replace(net.config, trees=shapes))
    out.net.load_state_dict(net.state_dict())
    for t, module in out.trees.items():
        load_trees(module, arrays[t], weights[t])
    return out.to(device).eval(), report


def shap_trees(module: TreeEnsemble, output: int = 0) -> dict:
    """The trees adding to output ``output`` (tree i adds to output ``i % out_dim``) in the dict form
    ``shap.TreeExplainer`` reads (a leaf has children −1), with that output alone: shap walks every tree for
    every output, so a 5-class head explained as one ensemble costs 25× its picked class's trees."""
    feature, threshold = module.feature.cpu().numpy(), module.threshold.cpu().numpy()
    left, right = module.left.cpu().numpy(), module.right.cpu().numpy()
    value, count = module.value.double().cpu().numpy(), module.count.cpu().numpy()
    roots = module.roots.cpu().numpy().tolist()
    out_dim = value.shape[1]
    trees = []
    for k, root in enumerate(roots):
        if k % out_dim != output:
            continue
        end = roots[k + 1] if k + 1 < len(roots) else len(feature)
        idx = np.arange(root, end)
        leaf = left[idx] == idx
        children_left = np.where(leaf, -1, left[idx] - root)
        children_right = np.where(leaf, -1, right[idx] - root)
        trees.append({"children_left": children_left, "children_right": children_right,
                      "children_default": children_left.copy(), "features": np.where(leaf, -2, feature[idx]),
                      "thresholds": np.where(leaf, 0.0, threshold[idx]), "values": value[idx, output:output + 1],
                      "node_sample_weight": count[idx]})
    return {"trees": trees, "base_offset": 0.0, "tree_output": "raw_value", "objective": "squared_error"}
