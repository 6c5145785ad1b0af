# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Linear probing of a frozen encoder: features once, then a multinomial
logistic regression fitted in full batch."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@torch.no_grad()
def extract_features(model: nn.Module, dataloader) -> Tuple[Tensor, Tensor]:
    """Features and labels of every sample of a dataloader.

    Args:
        model (nn.Module): An mmpretrain ``ImageClassifier`` (or any model
            with ``data_preprocessor`` and ``extract_feat`` returning a
            tuple whose last entry is (B, D)).
        dataloader (Iterable): Batches as mmengine dataloaders give them,
            with ``gt_label`` in the data samples.

    Returns:
        tuple[Tensor, Tensor]: Features (N, D) float32 and labels (N, ).
    """
    model.eval()
    feats, labels = [], []
    for data in dataloader:
        data = model.data_preprocessor(data, False)
        feat = model.extract_feat(data['inputs'])[-1]
        if feat.dim() != 2:
            raise ValueError(f'extract_feat must end with pooled (B, D) '
                             f'features, got shape {tuple(feat.shape)}; add '
                             f'a GlobalAveragePooling neck')
        feats.append(feat.float())
        labels.append(torch.cat([s.gt_label for s in data['data_samples']]))
    return torch.cat(feats), torch.cat(labels)


def linear_probe_accuracy(train_x: Tensor,
                          train_y: Tensor,
                          val_x: Tensor,
                          val_y: Tensor,
                          num_classes: int,
                          weight_decay: float = 1e-3,
                          max_iter: int = 300) -> float:
    """Top-1 (%) of a logistic regression on frozen features.

    Features are standardised with the training statistics; the linear
    classifier minimises cross-entropy + ``weight_decay * |W|^2`` with
    L-BFGS over the whole training set (deterministic).

    Args:
        train_x (Tensor): Training features (N, D).
        train_y (Tensor): Training labels (N, ).
        val_x (Tensor): Validation features (M, D).
        val_y (Tensor): Validation labels (M, ).
        num_classes (int): Number of classes.
        weight_decay (float): L2 weight on the weights. Defaults to 1e-3.
        max_iter (int): L-BFGS iterations. Defaults to 300.

    Returns:
        float: Validation top-1 accuracy in percent.
    """
    if train_x.shape[0] != train_y.shape[0] or \
            val_x.shape[0] != val_y.shape[0]:
        raise ValueError('features and labels differ in length: '
                         f'{train_x.shape[0]} vs {train_y.shape[0]}, '
                         f'{val_x.shape[0]} vs {val_y.shape[0]}')
    mean = train_x.mean(0)
    std = train_x.std(0).clamp_min(1e-6)
    train_x = ((train_x - mean) / std).double()
    val_x = ((val_x - mean) / std).double()
    linear = nn.Linear(train_x.shape[1], num_classes).double()
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    opt = torch.optim.LBFGS(
        linear.parameters(), max_iter=max_iter, line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(linear(train_x), train_y) + \
            weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        pred = linear(val_x).argmax(1)
    return (pred == val_y).double().mean().item() * 100.
