"""torch.ops.mft.* loaded from libmft_ops.so by plain Python, checked against PyTorch code written here
(independent of the C++ references): values, gradients (torch.autograd.gradcheck in fp64), decode steps.
Run by ctest with MFT_OPS_LIBRARY set to the built library."""
import os

import pytest
import torch
import torch.nn.functional as F

LIB = os.environ.get("MFT_OPS_LIBRARY")
if not LIB:
    pytest.fail("MFT_OPS_LIBRARY must point to libmft_ops.so (ctest sets it)", pytrace=False)
torch.ops.load_library(LIB)
ops = torch.ops.mft


def scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, initial_state=None):
    """Sequential selective scan in plain PyTorch (float64 inside)."""
    dt = delta.double()
    if delta_bias is not None:
        dt = dt + delta_bias.double()[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    batch, dim, seqlen = u.shape
    if B.dim() == 3:
        B = B[:, None]
        C = C[:, None]
    groups = B.shape[1]
    Bx = B.double().repeat_interleave(dim // groups, dim=1)  # (b, d, n, l)
    Cx = C.double().repeat_interleave(dim // groups, dim=1)
    x = initial_state.double() if initial_state is not None else u.new_zeros(batch, dim, A.shape[1], dtype=torch.float64)
    ys = []
    for t in range(seqlen):
        x = torch.exp(dt[:, :, t, None] * A.double()) * x + (dt[:, :, t] * u.double()[:, :, t])[:, :, None] * Bx[..., t]
        ys.append((x * Cx[..., t]).sum(-1))
    y = torch.stack(ys, -1)
    if D is not None:
        y = y + D.double()[:, None] * u.double()
    if z is not None:
        y = y * F.silu(z.double())
    return y, x


def conv_ref(x, weight, bias=None, initial_states=None, silu=False):
    dim, width = weight.shape
    if initial_states is not None:
        xp = torch.cat([initial_states.double(), x.double()], -1)
        out = F.conv1d(xp, weight.double()[:, None], bias.double() if bias is not None else None, groups=dim)
    else:
        out = F.conv1d(x.double(), weight.double()[:, None], bias.double() if bias is not None else None,
                       padding=width - 1, groups=dim)[..., : x.shape[-1]]
    return F.silu(out) if silu else out


def scan_inputs(batch=2, dim=20, dstate=8, seqlen=40, groups=0, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, d=dtype: torch.randn(*s, generator=g, dtype=torch.float64).to(d)
    pdt = torch.float64 if dtype == torch.float64 else torch.float32
    bc_shape = (batch, groups, dstate, seqlen) if groups else (batch, dstate, seqlen)
    return dict(
        u=r(batch, dim, seqlen), delta=(r(batch, dim, seqlen, d=torch.float64) * 0.5 - 1).to(dtype),
        A=-torch.exp(r(dim, dstate, d=pdt) * 0.5), B=r(*bc_shape), C=r(*bc_shape), D=r(dim, d=pdt),
        z=r(batch, dim, seqlen), delta_bias=r(dim, d=pdt) * 0.5, initial_state=r(batch, dim, dstate, d=pdt))


@pytest.mark.parametrize("groups", [0, 2])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (torch.bfloat16, 1.6e-2)])
def test_selective_scan_values_and_grads(groups, dtype, tol):
    inp = scan_inputs(groups=groups, dtype=dtype)
    leaves = {k: v.clone().requires_grad_(True) for k, v in inp.items()}
    out, last = ops.selective_scan(leaves["u"], leaves["delta"], leaves["A"], leaves["B"], leaves["C"], leaves["D"],
                                   leaves["z"], leaves["delta_bias"], True, leaves["initial_state"], True)
    ref_leaves = {k: v.double().clone().requires_grad_(True) for k, v in inp.items()}
    ref_out, ref_last = scan_ref(**ref_leaves, delta_softplus=True)
    assert out.dtype == dtype and last.dtype == torch.float32

    def nerr(a, b):
        return ((a.double() - b).abs().max() / b.abs().max()).item()

    # bf16: output rounding (2^-8) dominates; fp32: accumulated rounding over 40 steps.
    assert nerr(out, ref_out) < tol
    assert nerr(last, ref_last) < 2e-5
    w = torch.randn(out.shape, dtype=torch.float64)
    wl = torch.randn(last.shape, dtype=torch.float64)
    ((out.double() * w).sum() + (last.double() * wl).sum()).backward()
    ((ref_out * w.to(dtype).double()).sum() + (ref_last * wl).sum()).backward()
    for k in leaves:
        # Gradients are rounded to their input's dtype like the output: the same bound holds.
        assert nerr(leaves[k].grad, ref_leaves[k].grad) < tol, k


def test_selective_scan_gradcheck_fp64():
    inp = scan_inputs(batch=2, dim=4, dstate=3, seqlen=6, groups=2, dtype=torch.float64)
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state"]
    args = [inp[k].clone().requires_grad_(True) for k in names]

    def f(u, delta, A, B, C, D, z, bias, init):
        return ops.selective_scan(u, delta, A, B, C, D, z, bias, True, init, True)

    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("width", [2, 4])
def test_causal_conv1d(width):
    g = torch.Generator().manual_seed(width)
    x = torch.randn(2, 24, 33, generator=g, requires_grad=True)
    w = torch.randn(24, width, generator=g, requires_grad=True)
    b = torch.randn(24, generator=g, requires_grad=True)
    init = torch.randn(2, 24, width - 1, generator=g, requires_grad=True)
    out = ops.causal_conv1d(x, w, b, init, True)
    ref = conv_ref(x, w, b, init, True)
    assert ((out.double() - ref).abs().max() / ref.abs().max()).item() < 1e-5
    grads = torch.autograd.grad(out.sum(), [x, w, b, init])
    ref_grads = torch.autograd.grad(ref.sum(), [x, w, b, init])
    for a, r in zip(grads, ref_grads):
        assert ((a.double() - r).abs().max() / r.abs().max()).item() < 1e-5
    args = [t.detach().double().requires_grad_(True) for t in (x, w, b, init)]
    assert torch.autograd.gradcheck(lambda *a: ops.causal_conv1d(*a, True), args, eps=1e-6, atol=1e-7)


def test_decode_steps_reproduce_full_sequence():
    inp = scan_inputs(batch=2, dim=20, dstate=16, seqlen=10)
    out, last = ops.selective_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], inp["D"], inp["z"],
                                   inp["delta_bias"], True, inp["initial_state"], True)
    state = inp["initial_state"].clone()
    steps = [ops.selective_state_update(state, inp["u"][..., t], inp["delta"][..., t], inp["A"], inp["B"][..., t],
                                        inp["C"][..., t], inp["D"], inp["z"][..., t], inp["delta_bias"], True)
             for t in range(10)]
    torch.testing.assert_close(torch.stack(steps, -1), out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state, last, rtol=1e-5, atol=1e-5)

    x = torch.randn(2, 20, 9)
    w = torch.randn(20, 4)
    full = ops.causal_conv1d(x, w, None, None, False)
    conv_state = torch.zeros(2, 20, 3)
    stepped = torch.stack([ops.causal_conv1d_update(x[..., t], conv_state, w, None, False) for t in range(9)], -1)
    torch.testing.assert_close(stepped, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv_state, x[..., -3:])


def test_clear_errors():
    inp = scan_inputs()
    with pytest.raises(RuntimeError, match="A must be Float"):
        ops.selective_scan(inp["u"], inp["delta"], inp["A"].double(), inp["B"], inp["C"])


def test_double_backward_is_refused():
    inp = scan_inputs(batch=1, dim=4, dstate=2, seqlen=5)
    u = inp["u"].clone().requires_grad_(True)
    out, _ = ops.selective_scan(u, inp["delta"], inp["A"], inp["B"], inp["C"])
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(out.sum(), u, create_graph=True)
    x = torch.randn(1, 4, 6, requires_grad=True)
    y = ops.causal_conv1d(x, torch.randn(4, 3), None, None, True)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(y.sum(), x, create_graph=True)


def ssd_ref(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False, dt_limit=(0.0, float("inf")),
            initial_states=None):
    """Mamba-2 recurrence in plain PyTorch (float64): S_t = exp(dt A) S + dt x B^T, y = S C + D x."""
    b, L, h, p = x.shape
    g = B.shape[2]
    d = dt.double() + (dt_bias.double() if dt_bias is not None else 0)
    d = F.softplus(d) if dt_softplus else d
    d = d.clamp(dt_limit[0], dt_limit[1])
    Bh = B.double().repeat_interleave(h // g, dim=2)  # (b, L, h, n)
    Ch = C.double().repeat_interleave(h // g, dim=2)
    S = initial_states.double() if initial_states is not None else x.new_zeros(b, h, p, B.shape[3], dtype=torch.float64)
    ys = []
    for t in range(L):
        dA = torch.exp(d[:, t] * A.double())[:, :, None, None]
        S = dA * S + (d[:, t, :, None, None] * x.double()[:, t, :, :, None]) * Bh[:, t, :, None, :]
        ys.append((S * Ch[:, t, :, None, :]).sum(-1))
    y = torch.stack(ys, 1)
    if D is not None:
        y = y + (D.double()[:, None] if D.dim() == 1 else D.double()) * x.double()
    if z is not None:
        y = y * F.silu(z.double())
    return y, S


@pytest.mark.parametrize("chunk", [1, 4, 64])
def test_ssd_scan_values_grads_and_gradcheck(chunk):
    g = torch.Generator().manual_seed(chunk)
    b, L, h, p, groups, n = 2, 11, 4, 3, 2, 5
    mk = lambda *s, scale=1.0: (torch.randn(*s, generator=g, dtype=torch.float64) * scale).requires_grad_()
    x, z = mk(b, L, h, p), mk(b, L, h, p)
    dt, B, C = mk(b, L, h, scale=0.5), mk(b, L, groups, n), mk(b, L, groups, n)
    A = (-torch.rand(h, generator=g, dtype=torch.float64) - 0.2).requires_grad_()
    D, bias, init = mk(h, p), mk(h, scale=0.3), mk(b, h, p, n)
    args = dict(D=D, z=z, dt_bias=bias, initial_states=init, dt_softplus=True)
    out, fin = ops.ssd_scan(x, dt, A, B, C, chunk, D, z, bias, init, None, True, [0.05, 2.0], True)
    ref, ref_fin = ssd_ref(x, dt, A, B, C, dt_limit=(0.05, 2.0), **args)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fin, ref_fin, rtol=1e-10, atol=1e-10)
    f = lambda *t: ops.ssd_scan(*t[:5], chunk, t[5], t[6], t[7], t[8], None, True, None, True)
    assert torch.autograd.gradcheck(f, (x, dt, A, B, C, D, z, bias, init), eps=1e-6, atol=1e-7)


def test_ssd_state_update_steps_reproduce_ssd_scan():
    g = torch.Generator().manual_seed(3)
    b, L, h, p, n = 1, 7, 6, 16, 8
    x, z = torch.randn(b, L, h, p, generator=g), torch.randn(b, L, h, p, generator=g)
    dt, B, C = torch.randn(b, L, h, generator=g), torch.randn(b, L, 3, n, generator=g), torch.randn(b, L, 3, n, generator=g)
    A, D, bias = -torch.rand(h, generator=g) - 0.1, torch.randn(h, generator=g), torch.randn(h, generator=g)
    full, fin = ops.ssd_scan(x, dt, A, B, C, 4, D, z, bias, None, None, True, None, True)
    state = torch.zeros(b, h, p, n)
    steps = [ops.ssd_state_update(state, x[:, t], dt[:, t], A, B[:, t], C[:, t], D, z[:, t], bias, True)
             for t in range(L)]
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state, fin, rtol=1e-5, atol=1e-5)
