// CUDA entry points of mft::selective_scan, selective_scan_fwd and selective_scan_backward: validation
// (shared with the CPU kernels), device guard and current stream, fp32 compute (fp64 for fp64 u) with
// other dtypes converted around the kernels, launch checks, the fixed-order reductions of the
// per-channel gradient parts, and the CUDA dispatch-key registration.
#include "core/check.h"
#include "core/output.h"
#include "ops/selective_scan.h"
#include "selective_scan/scan_params.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

namespace mft {
namespace {

constexpr const char* kOp = "selective_scan (CUDA)";

struct ScanInputs {
  at::Tensor u, delta, A, B, C, D, z, bias, init, seq;  // contiguous, compute dtype (seq int32)
};

// B or C in the kernels' layout: (B, G, N, L) when time-varying, else (D, N).
at::Tensor bc_layout(const at::Tensor& t, at::ScalarType cd) {
  const at::Tensor c = t.to(cd);
  return (c.dim() == 3 ? c.unsqueeze(1) : c).contiguous();
}

ScanInputs prepare(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B,
                   const at::Tensor& C, const OptTensor& D, const OptTensor& z, const OptTensor& bias,
                   const OptTensor& init, const OptTensor& seq, const ScanGeometry& g) {
  TORCH_CHECK(g.dstate <= cuda::kMaxDstate, kOp, ": dstate = ", g.dstate, " but the CUDA kernels hold at most ",
              cuda::kMaxDstate, " states per channel");
  const at::ScalarType cd = compute_dtype(u);
  ScanInputs in;
  in.u = u.to(cd).contiguous();
  in.delta = delta.to(cd).contiguous();
  in.A = A.to(cd).contiguous();
  in.B = bc_layout(B, cd);
  in.C = bc_layout(C, cd);
  if (D) in.D = D->to(cd).contiguous();
  if (z) in.z = z->to(cd).contiguous();
  if (bias) in.bias = bias->to(cd).contiguous();
  if (init) in.init = init->to(cd).contiguous();
  if (seq) in.seq = seq->contiguous();
  return in;
}

template <typename S>
const S* ptr(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<S>() : nullptr;
}
template <typename S>
S* mptr(at::Tensor& t) {
  return t.defined() ? t.mutable_data_ptr<S>() : nullptr;
}

template <typename S>
cuda::ScanParams<S> params(const ScanInputs& in, const ScanGeometry& g, bool softplus) {
  cuda::ScanParams<S> p;
  p.batch = g.batch;
  p.dim = g.dim;
  p.seqlen = g.seqlen;
  p.dstate = g.dstate;
  p.groups = g.groups;
  p.var_B = g.var_B;
  p.var_C = g.var_C;
  p.softplus = softplus;
  p.u = ptr<S>(in.u);
  p.delta = ptr<S>(in.delta);
  p.A = ptr<S>(in.A);
  p.Bm = ptr<S>(in.B);
  p.Cm = ptr<S>(in.C);
  p.Dv = ptr<S>(in.D);
  p.z = ptr<S>(in.z);
  p.bias = ptr<S>(in.bias);
  p.init = ptr<S>(in.init);
  p.seq = in.seq.defined() ? in.seq.const_data_ptr<int32_t>() : nullptr;
  return p;
}

// out (in u's dtype), last state (compute dtype; empty unless asked), checkpoints (compute dtype; empty
// unless asked).
std::tuple<at::Tensor, at::Tensor, at::Tensor> run_forward(const ScanInputs& in, const ScanGeometry& g, bool softplus,
                                                           bool want_last, bool want_ck, at::ScalarType out_dtype) {
  const auto opts = in.u.options();
  at::Tensor out = new_output_like(in.u);
  at::Tensor last = want_last ? new_output({g.batch, g.dim, g.dstate}, opts) : new_output({0}, opts);
  at::Tensor ck =
      want_ck ? new_output({g.batch, g.dim, cuda::scan_segments(g.seqlen), g.dstate}, opts) : new_output({0}, opts);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(in.u.scalar_type(), "mft_selective_scan_cuda", [&] {
    C10_CUDA_CHECK(cuda::scan_forward<scalar_t>(params<scalar_t>(in, g, softplus), mptr<scalar_t>(out),
                                                want_last ? mptr<scalar_t>(last) : nullptr,
                                                want_ck ? mptr<scalar_t>(ck) : nullptr, stream));
  });
  return {out.to(out_dtype), last, ck};
}

std::tuple<at::Tensor, at::Tensor> scan_cuda(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                             const at::Tensor& B, const at::Tensor& C, const OptTensor& D,
                                             const OptTensor& z, const OptTensor& bias, bool softplus,
                                             const OptTensor& init, bool return_last, const OptTensor& seq) {
  const ScanGeometry g = check_selective_scan_args(u, delta, A, B, C, D, z, bias, init, seq);
  const c10::cuda::CUDAGuard guard(u.device());
  const ScanInputs in = prepare(u, delta, A, B, C, D, z, bias, init, seq, g);
  auto [out, last, ck] = run_forward(in, g, softplus, return_last, false, u.scalar_type());
  return {out, last};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> scan_fwd_cuda(const at::Tensor& u, const at::Tensor& delta,
                                                             const at::Tensor& A, const at::Tensor& B,
                                                             const at::Tensor& C, const OptTensor& D,
                                                             const OptTensor& z, const OptTensor& bias, bool softplus,
                                                             const OptTensor& init, bool return_last,
                                                             const OptTensor& seq) {
  const ScanGeometry g = check_selective_scan_args(u, delta, A, B, C, D, z, bias, init, seq);
  const c10::cuda::CUDAGuard guard(u.device());
  const ScanInputs in = prepare(u, delta, A, B, C, D, z, bias, init, seq, g);
  return run_forward(in, g, softplus, return_last, true, u.scalar_type());
}

// A (B, G, N, L) or (D, N) gradient part summed to the layout and dtype of the input B/C.
at::Tensor finish_bc(const at::Tensor& part, const at::Tensor& like, const ScanGeometry& g, bool var) {
  if (!var) return part.sum(0).to(like.scalar_type());  // (B, D, N) -> (D, N)
  // (B, D, N, L) -> (B, G, D/G, N, L) -> sum over the group's channels.
  at::Tensor s = part.view({g.batch, g.groups, g.dim / g.groups, g.dstate, g.seqlen}).sum(2);
  if (like.dim() == 3) s = s.squeeze(1);
  return s.to(like.scalar_type()).contiguous();
}

ScanGrads scan_backward_cuda(const at::Tensor& dout, const OptTensor& dlast, const at::Tensor& u,
                             const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B, const at::Tensor& C,
                             const OptTensor& D, const OptTensor& z, const OptTensor& bias, bool softplus,
                             const OptTensor& init, const OptTensor& seq, const OptTensor& checkpoints) {
  const ScanGeometry g = check_selective_scan_args(u, delta, A, B, C, D, z, bias, init, seq);
  check_sizes(dout, u.sizes(), kOp, "dout", "(batch, dim, seqlen) like u");
  check_floating(dout, kOp, "dout");
  check_device(dout, u, kOp, "dout");
  const bool has_dlast = dlast && dlast->defined() && dlast->numel() > 0;
  if (has_dlast) {
    check_sizes(*dlast, {g.batch, g.dim, g.dstate}, kOp, "dlast_state", "(batch, dim, dstate)");
    check_device(*dlast, u, kOp, "dlast_state");
  }
  const c10::cuda::CUDAGuard guard(u.device());
  const ScanInputs in = prepare(u, delta, A, B, C, D, z, bias, init, seq, g);
  const at::ScalarType cd = in.u.scalar_type();
  at::Tensor ck;
  if (checkpoints && checkpoints->numel() > 0) {
    check_sizes(*checkpoints, {g.batch, g.dim, cuda::scan_segments(g.seqlen), g.dstate}, kOp, "checkpoints",
                "(batch, dim, ceil(seqlen / 256), dstate) from selective_scan_fwd");
    check_dtype(*checkpoints, cd, kOp, "checkpoints");
    check_device(*checkpoints, u, kOp, "checkpoints");
    ck = checkpoints->contiguous();
  } else {
    ck = std::get<2>(run_forward(in, g, softplus, false, true, cd));
  }
  const at::Tensor d = dout.to(cd).contiguous();
  const at::Tensor dl = has_dlast ? dlast->to(cd).contiguous() : at::Tensor();
  const auto opts = in.u.options();
  at::Tensor states = new_output({g.batch, g.dim, cuda::kScanSegment, g.dstate}, opts);  // the kernel's stride
  at::Tensor du = new_output_like(in.u), ddelta = new_output_like(in.u);
  at::Tensor dz = z ? new_output_like(in.u) : at::Tensor();
  at::Tensor dinit = init ? new_output({g.batch, g.dim, g.dstate}, opts) : at::Tensor();
  at::Tensor dA_part = new_output({g.batch, g.dim, g.dstate}, opts);
  auto bc_part = [&](bool var) {
    return var ? new_output({g.batch, g.dim, g.dstate, g.seqlen}, opts) : new_output({g.batch, g.dim, g.dstate}, opts);
  };
  at::Tensor dB_part = bc_part(g.var_B), dC_part = bc_part(g.var_C);
  at::Tensor dD_part = new_output({g.batch, g.dim}, opts), dbias_part = new_output({g.batch, g.dim}, opts);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(cd, "mft_selective_scan_backward_cuda", [&] {
    C10_CUDA_CHECK(cuda::scan_backward<scalar_t>(
        params<scalar_t>(in, g, softplus), ptr<scalar_t>(d), ptr<scalar_t>(dl), ptr<scalar_t>(ck),
        mptr<scalar_t>(states), mptr<scalar_t>(du), mptr<scalar_t>(ddelta), mptr<scalar_t>(dz), mptr<scalar_t>(dinit),
        mptr<scalar_t>(dA_part), mptr<scalar_t>(dB_part), mptr<scalar_t>(dC_part), mptr<scalar_t>(dD_part),
        mptr<scalar_t>(dbias_part), stream));
  });
  return {du.to(u.scalar_type()),
          ddelta.to(delta.scalar_type()),
          dA_part.sum(0).to(A.scalar_type()),
          finish_bc(dB_part, B, g, g.var_B),
          finish_bc(dC_part, C, g, g.var_C),
          D ? dD_part.sum(0).to(D->scalar_type()) : at::Tensor(),
          z ? dz.to(z->scalar_type()) : at::Tensor(),
          bias ? dbias_part.sum(0).to(bias->scalar_type()) : at::Tensor(),
          init ? dinit.to(init->scalar_type()) : at::Tensor()};
}

}  // namespace

TORCH_LIBRARY_IMPL(mft, CUDA, m) {
  m.impl("selective_scan", &scan_cuda);
  m.impl("selective_scan_fwd", &scan_fwd_cuda);
  m.impl("selective_scan_backward", &scan_backward_cuda);
}

}  // namespace mft
