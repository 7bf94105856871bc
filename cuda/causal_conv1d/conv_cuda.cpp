// CUDA entry points of mft::causal_conv1d and its backward: validation (shared with the CPU kernels),
// device guard and current stream, fp32 compute (fp64 for fp64 inputs; other dtypes converted around
// the kernels), launch checks, and the CUDA dispatch-key registration.
#include "causal_conv1d/conv_params.h"
#include "core/check.h"
#include "core/output.h"
#include "ops/causal_conv1d.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

namespace mft {
namespace {

struct ConvInputs {
  at::Tensor x, weight, bias, init, seq;  // contiguous, in the compute dtype (seq int32)
};

ConvInputs prepare(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias, const OptTensor& init,
                   const OptTensor& seq_idx, at::ScalarType cd) {
  ConvInputs in;
  in.x = x.to(cd).contiguous();
  in.weight = weight.to(cd).contiguous();
  if (bias) in.bias = bias->to(cd).contiguous();
  if (init) in.init = init->to(cd).contiguous();
  if (seq_idx) in.seq = seq_idx->contiguous();
  return in;
}

template <typename S>
cuda::ConvParams<S> params(const ConvInputs& in, const ConvGeometry& g, bool silu) {
  cuda::ConvParams<S> p;
  p.batch = g.batch;
  p.dim = g.dim;
  p.seqlen = g.seqlen;
  p.width = g.width;
  p.x = in.x.const_data_ptr<S>();
  p.weight = in.weight.const_data_ptr<S>();
  p.bias = in.bias.defined() ? in.bias.const_data_ptr<S>() : nullptr;
  p.init = in.init.defined() ? in.init.const_data_ptr<S>() : nullptr;
  p.seq = in.seq.defined() ? in.seq.const_data_ptr<int32_t>() : nullptr;
  p.silu = silu;
  return p;
}

at::Tensor forward_cuda(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias, const OptTensor& init,
                        bool silu, const OptTensor& seq_idx) {
  const ConvGeometry g = check_causal_conv1d_args(x, weight, bias, init, seq_idx);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::ScalarType cd = compute_dtype(x);
  const ConvInputs in = prepare(x, weight, bias, init, seq_idx, cd);
  at::Tensor out = new_output_like(in.x);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(cd, "mft_causal_conv1d_cuda", [&] {
    C10_CUDA_CHECK(
        cuda::conv_forward<scalar_t>(params<scalar_t>(in, g, silu), out.mutable_data_ptr<scalar_t>(), stream));
  });
  return out.to(x.scalar_type());
}

ConvGrads backward_cuda(const at::Tensor& dout, const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                        const OptTensor& init, bool silu, const OptTensor& seq_idx) {
  const ConvGeometry g = check_causal_conv1d_args(x, weight, bias, init, seq_idx);
  check_sizes(dout, x.sizes(), "causal_conv1d_backward", "dout", "(batch, dim, seqlen) like x");
  check_floating(dout, "causal_conv1d_backward", "dout");
  check_device(dout, x, "causal_conv1d_backward", "dout");
  const c10::cuda::CUDAGuard guard(x.device());
  const at::ScalarType cd = compute_dtype(x);
  const ConvInputs in = prepare(x, weight, bias, init, seq_idx, cd);
  const at::Tensor d = dout.to(cd).contiguous();
  const auto opts = in.x.options();
  at::Tensor scratch = new_output_like(in.x), dx = new_output_like(in.x);
  at::Tensor dinit = init ? new_output({g.batch, g.dim, g.width - 1}, opts) : at::Tensor();
  at::Tensor dw_part = new_output({g.batch, g.dim, g.width}, opts), db_part = new_output({g.batch, g.dim}, opts);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(cd, "mft_causal_conv1d_backward_cuda", [&] {
    C10_CUDA_CHECK(cuda::conv_backward<scalar_t>(
        params<scalar_t>(in, g, silu), d.const_data_ptr<scalar_t>(), scratch.mutable_data_ptr<scalar_t>(),
        dx.mutable_data_ptr<scalar_t>(), dinit.defined() ? dinit.mutable_data_ptr<scalar_t>() : nullptr,
        dw_part.mutable_data_ptr<scalar_t>(), db_part.mutable_data_ptr<scalar_t>(), stream));
  });
  at::Tensor dbias = bias ? db_part.sum(0).to(bias->scalar_type()) : at::Tensor();
  if (dinit.defined()) dinit = dinit.to(init->scalar_type());
  return {dx.to(x.scalar_type()), dw_part.sum(0).to(weight.scalar_type()), dbias, dinit};
}

}  // namespace

TORCH_LIBRARY_IMPL(mft, CUDA, m) {
  m.impl("causal_conv1d", &forward_cuda);
  m.impl("causal_conv1d_backward", &backward_cuda);
}

}  // namespace mft
