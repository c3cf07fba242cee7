"""Run by tests/test_distributed.py, with one process or under torchrun: `fit` two steps on a known batch, recording
which samples each process saw and the gradients it stepped with."""
import os, sys, torch, accelerate
from sdfound.train import fit, end_processes

out = sys.argv[1]
torch.manual_seed(0)
model = torch.nn.Linear(3, 2)
X, Y, IDX = torch.randn(8, 3, generator=torch.Generator().manual_seed(1)), torch.randn(8, 2, generator=torch.Generator().manual_seed(2)), torch.arange(8)
seen, grads = [], []
def loss_fn(m, b):
    seen.append(b['idx'].tolist())
    return (m(b['x']) - b['y']).pow(2).mean()  # a mean over the samples, as the UNet's and the VAE's losses are
clip = accelerate.Accelerator.clip_grad_norm_
def record(self, params, *args, **kwargs):  # gradients as the optimiser will see them
    params = list(params); grads.append([p.grad.clone() for p in params])
    return clip(self, params, *args, **kwargs)
accelerate.Accelerator.clip_grad_norm_ = record
losses = fit(model, loss_fn, lambda step: dict(x=X, y=Y, idx=IDX), steps=2, lr=1e-2, warmup=1, ckpt_dir=f'{out}/ckpt', progress=False)
torch.save(dict(seen=seen, grads=grads, weight=model.weight.detach(), losses=losses), f"{out}/probe{os.environ.get('RANK', 'single')}.pt")
end_processes()  # a clean exit for every process
