"""A transcription of the official Sense-X/MixMIM modules
(``models_mixmim.py`` / ``models_mixmim_ft.py``): timm names,
``relative_position_index`` buffers, the frozen (1, L, C) sin-cos
``absolute_pos_embed``, the official forward. Its ``state_dict()`` has
exactly the official key layout, so the converter tests synthesise official
checkpoints with it, and the converted model must reproduce its outputs."""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def mae_sincos(embed_dim, grid_size):
    """MAE's numpy ``get_2d_sincos_pos_embed`` (cls_token=False)."""

    def one_d(dim, pos):
        omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.)
        out = np.einsum('m,d->md', pos.reshape(-1), 1. / 10000**omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid = np.meshgrid(
        np.arange(grid_size, dtype=np.float32),
        np.arange(grid_size, dtype=np.float32))  # w goes first
    grid = np.stack(grid, axis=0).reshape(2, 1, grid_size, grid_size)
    emb = np.concatenate(
        [one_d(embed_dim // 2, grid[0]),
         one_d(embed_dim // 2, grid[1])], axis=1)
    return torch.from_numpy(emb).float()[None]


def _window_partition(x, ws):
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, c)


def _window_reverse(windows, ws, h, w):
    b = windows.shape[0] // (h * w // ws // ws)
    x = windows.view(b, h // ws, w // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


class Mlp(nn.Module):

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class WindowAttention(nn.Module):

    def __init__(self, dim, ws, heads):
        super().__init__()
        self.ws, self.heads, self.scale = ws, heads, (dim // heads)**-0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * ws - 1)**2, heads))
        coords = torch.stack(
            torch.meshgrid([torch.arange(ws),
                            torch.arange(ws)], indexing='ij')).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
        rel[:, :, 0] += ws - 1
        rel[:, :, 1] += ws - 1
        rel[:, :, 0] *= 2 * ws - 1
        self.register_buffer('relative_position_index', rel.sum(-1))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, -1).permute(
            2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[
            self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1)[None]
        if mask is not None:
            mask = mask.reshape(b, 1, 1, n)
            same = mask * mask.transpose(2, 3) + (1 - mask) * (
                1 - mask).transpose(2, 3)
            attn = attn - 1e30 * (1 - same)
        x = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class MixMIMBlock(nn.Module):

    def __init__(self, dim, res, heads, ws):
        super().__init__()
        self.res = res
        self.ws = min(res) if min(res) <= ws else ws
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, self.ws, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * 4)

    def forward(self, x, attn_mask=None):
        (h, w), (b, _, c), ws = self.res, x.shape, self.ws
        y = _window_partition(self.norm1(x).view(b, h, w, c), ws)
        if attn_mask is not None:
            attn_mask = _window_partition(
                attn_mask.repeat(b, 1, 1).view(b, h, w, 1),
                ws).view(-1, ws * ws, 1)
        y = self.attn(y.view(-1, ws * ws, c), mask=attn_mask)
        x = x + _window_reverse(y.view(-1, ws, ws, c), ws, h, w).view(
            b, h * w, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """timm (old signature): concat (0,0), (1,0), (0,1), (1,1)."""

    def __init__(self, res, dim):
        super().__init__()
        self.res = res
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        (h, w), (b, _, c) = self.res, x.shape
        x = x.view(b, h, w, c)
        x = torch.cat([
            x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2],
            x[:, 1::2, 1::2]
        ], -1).view(b, -1, 4 * c)
        return self.reduction(self.norm(x))


class MixMIMLayer(nn.Module):

    def __init__(self, dim, res, depth, heads, ws, downsample):
        super().__init__()
        self.blocks = nn.ModuleList(
            [MixMIMBlock(dim, res, heads, ws) for _ in range(depth)])
        self.downsample = PatchMerging(res, dim) if downsample else None

    def forward(self, x, attn_mask=None):
        for blk in self.blocks:
            x = blk(x, attn_mask=attn_mask)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, 4, 4)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class Attention(nn.Module):  # timm vision_transformer.Attention

    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads)**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, -1).permute(
            2, 0, 3, 1, 4).unbind(0)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):  # timm vision_transformer.Block

    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, dim * 4)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class OfficialMixMIM(nn.Module):
    """``models_mixmim.MixMIM`` (pretrain=True) or ``models_mixmim_ft``."""

    def __init__(self,
                 embed,
                 depths,
                 heads,
                 windows,
                 img,
                 pretrain=True,
                 num_classes=10,
                 dec_dim=512,
                 dec_depth=8,
                 dec_heads=16):
        super().__init__()
        grid = img // 4
        self.pretrain = pretrain
        self.patch_embed = PatchEmbed(embed)
        self.layers = nn.ModuleList([
            MixMIMLayer(embed * 2**i, (grid // 2**i, ) * 2, depths[i],
                        heads[i], windows[i], i < len(depths) - 1)
            for i in range(len(depths))
        ])
        num_features = embed * 2**(len(depths) - 1)
        self.norm = nn.LayerNorm(num_features)
        self.absolute_pos_embed = nn.Parameter(
            mae_sincos(embed, grid), requires_grad=False)
        if pretrain:
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_dim))
            self.decoder_pos_embed = nn.Parameter(
                mae_sincos(dec_dim, img // 32), requires_grad=False)
            self.decoder_embed = nn.Linear(num_features, dec_dim)
            self.decoder_blocks = nn.ModuleList(
                [Block(dec_dim, dec_heads) for _ in range(dec_depth)])
            self.decoder_norm = nn.LayerNorm(dec_dim)
            self.decoder_pred = nn.Linear(dec_dim, 32**2 * 3)
        else:
            self.head = nn.Linear(num_features, num_classes)

    def forward_encoder(self, x, masks=None):
        x = self.patch_embed(x)
        if masks is not None:
            x = x * (1. - masks[0]) + x.flip(0) * masks[0]
        x = x + self.absolute_pos_embed
        for i, layer in enumerate(self.layers):
            x = layer(x, attn_mask=None if masks is None else masks[i])
        return self.norm(x)

    def forward_decoder(self, x, mask):
        x = self.decoder_embed(x)
        tokens = self.mask_token.expand(*x.shape[:2], -1)
        x = torch.cat([x * (1 - mask) + tokens * mask,
                       x * mask + tokens * (1 - mask)])
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))

    def reconstruct_and_loss(self, imgs, masks):
        """Un-mixed predictions (B, L, 3072) and the official loss."""
        x_rec = self.forward_decoder(self.forward_encoder(imgs, masks),
                                     masks[-1])
        b, p = imgs.shape[0], 32
        x1, x2 = x_rec[:b], x_rec[b:]
        rec = x1 * masks[-1] + x2.flip(0) * (1 - masks[-1])
        h = imgs.shape[2] // p
        target = torch.einsum('nchpwq->nhwpqc',
                              imgs.reshape(b, 3, h, p, h, p)).reshape(
                                  b, h * h, p * p * 3)
        mean = target.mean(-1, keepdim=True)
        var = target.var(-1, keepdim=True)
        target = (target - mean) / (var + 1.e-6)**.5
        return rec, ((rec - target)**2).mean()

    def classify(self, imgs):
        return self.head(self.forward_encoder(imgs).mean(1))


def official_key_layout(depths, dec_depth, pretrain):
    """The key layout of anchors section 1.8, written out."""
    keys = ['absolute_pos_embed', 'norm.weight', 'norm.bias']
    keys += [f'patch_embed.{m}.{p}' for m in ('proj', 'norm')
             for p in ('weight', 'bias')]
    block = [f'{m}.{p}' for m in ('norm1', 'attn.qkv', 'attn.proj', 'norm2',
                                  'mlp.fc1', 'mlp.fc2')
             for p in ('weight', 'bias')]
    for s, depth in enumerate(depths):
        for j in range(depth):
            pre = f'layers.{s}.blocks.{j}.'
            keys += [pre + k for k in block]
            keys += [pre + 'attn.relative_position_bias_table',
                     pre + 'attn.relative_position_index']
        if s < len(depths) - 1:
            keys += [f'layers.{s}.downsample.norm.weight',
                     f'layers.{s}.downsample.norm.bias',
                     f'layers.{s}.downsample.reduction.weight']
    if pretrain:
        keys += ['mask_token', 'decoder_pos_embed']
        keys += [f'decoder_{m}.{p}' for m in ('embed', 'norm', 'pred')
                 for p in ('weight', 'bias')]
        keys += [f'decoder_blocks.{k}.{b}' for k in range(dec_depth)
                 for b in block]
    else:
        keys += ['head.weight', 'head.bias']
    return set(keys)
