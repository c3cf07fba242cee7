"""Where a VAE's corner blotch comes from: five measurements on 600 fresh DigitScenes pictures.

    python bench/vae_blotch.py [VAE_FOLDER]     (default: the shipped tiny model's VAE)
1. the mean absolute error of each 8×8 corner, in grey levels (0–255);
2. the same with every picture mirrored left-right before encoding and back after decoding: if the blotch follows
   the network's frame, it shows up in the mirrored corner of the picture's frame;
3. the latent at the blotch replaced by the mean of its three neighbours before decoding: does the decoder paint it
   from that one latent?
4. flat pictures of each palette colour: how much their latents vary from position to position (a code of position
   the encoder writes), and what the decoder makes of a latent with that variation removed;
5. inside the decoder, just before its last normalisation: where each channel strays farthest from its own mean over
   the picture. A normalisation that gives each channel a group of its own (GroupNorm with as many groups as
   channels) divides out every channel's mean and spread, so a flat region carries no level of its own; a network
   then learns to keep one strong spike somewhere, which sets the statistics for the rest of the picture (the
   "droplet" of StyleGAN2, Karras et al. 2020)."""
import sys
import torch
from diffusers import AutoencoderKL
from sdfound.core import models_dir
from sdfound.data import DigitScenes, COLOURS, PALETTE
from sdfound.data import TRAIN_FONTS, render_pictures, to_unit
from sdfound.vae import corner_errors

def corners(recon, x): return ' / '.join(f"{v:.1f}" for v in corner_errors((recon - x).abs().mean((0, 1)) * 127.5).values())

@torch.no_grad()
def main(folder):
    vae = AutoencoderKL.from_pretrained(folder).eval()
    decode = lambda z: vae.decode(z).sample.clamp(-1, 1)
    x = to_unit(render_pictures(DigitScenes(600, seed=12345, fonts=TRAIN_FONTS))[0])
    z = vae.encode(x).latent_dist.mean
    print(f"VAE {folder}\n\nmean absolute error of each 8×8 corner, TL / TR / BL / BR, in grey levels:\n")
    print("| measurement | TL / TR / BL / BR |\n|---|---|")
    print(f"| pictures as they are | {corners(decode(z), x)} |")
    mirrored = decode(vae.encode(x.flip(-1)).latent_dist.mean).flip(-1)
    print(f"| mirrored before encoding, back after decoding (picture's frame) | {corners(mirrored, x)} |")
    patched = z.clone(); patched[..., 0, -1] = (z[..., 0, -2] + z[..., 1, -1] + z[..., 1, -2]) / 3
    print(f"| top-right latent replaced by its neighbours' mean | {corners(decode(patched), x)} |")
    flat = (torch.tensor([PALETTE[c] for c in COLOURS]).float() / 127.5 - 1)[:, :, None, None].expand(-1, 3, 64, 64).contiguous()
    zf = vae.encode(flat).latent_dist.mean
    print(f"| flat pictures, one per palette colour | {corners(decode(zf), flat)} |")
    print(f"| flat pictures, each latent channel set to its mean over positions | {corners(decode(zf.mean((2, 3), keepdim=True).expand_as(zf)), flat)} |")
    print(f"\nflat pictures: latent std across positions {zf.std((2, 3)).mean():.3f}, across colours {zf.mean((2, 3)).std(0).mean():.3f}")
    seen = {}
    norm = vae.decoder.conv_norm_out
    hook = norm.register_forward_hook(lambda m, inp, out: seen.update(h=inp[0]))
    decode(z); hook.remove()
    dev = (seen['h'] - seen['h'].mean((2, 3), keepdim=True)).abs().mean(0)  # channels × 64 × 64
    C, H, W = dev.shape
    peaks = [divmod(int(d.flatten().argmax()), W) for d in dev]
    in_tr = sum(r < H // 8 + 2 and c >= W - W // 8 - 2 for r, c in peaks)
    ratio = (dev[:, :H // 8, -W // 8:].mean((1, 2)) / dev.mean((1, 2))).mean()
    print(f"\ndecoder, before its last GroupNorm ({norm.num_groups} groups for {norm.num_channels} channels): "
          f"{in_tr} of {C} channels stray farthest from their mean in the top-right corner; there, they stray "
          f"{ratio:.1f}× as far as on average over the picture")

if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else models_dir() / 'tiny' / 'vae')
