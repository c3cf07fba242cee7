"""Where a VAE's corner blotch comes from: four measurements on 600 fresh DigitScenes pictures.

    python bench/vae_blotch.py [VAE_FOLDER]     (default: the shipped tiny model's VAE)
1. the mean absolute error of each 8×8 corner, in grey levels (0–255);
2. the same with every picture mirrored left-right before encoding and back after decoding: if the blotch follows
   the network's frame, it shows up in the mirrored corner of the picture's frame;
3. the latent at the blotch replaced by the mean of its three neighbours before decoding: does the decoder paint it
   from that one latent?
4. flat pictures of each palette colour: how much their latents vary from position to position (a code of position
   the encoder writes), and what the decoder makes of a latent with that variation removed."""
import sys
import torch
from diffusers import AutoencoderKL
from sdfound.core import models_dir
from sdfound.data import DigitScenes, COLOURS, PALETTE
from sdfound.tiny import TRAIN_FONTS, render_pictures, to_unit
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

if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else models_dir() / 'tiny' / 'vae')
