#include "ops/rms_norm.h"

#include "core/simd.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace mft {
namespace {

constexpr int64_t kRowBlock = 16;  // rows per task and per weight-gradient partial sum

// x, y (N, D); w (D,); r (N,) = 1 / sqrt(mean(x²) + eps), kept for the backward.
template <typename S>
void forward_rows(const S* x, const S* w, S* y, S* r, int64_t N, int64_t D, double eps) {
  at::parallel_for(0, N, kRowBlock, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const S* xi = x + i * D;
      S* yi = y + i * D;
      const S ri = S(1) / std::sqrt(simd::dot(xi, xi, D) / S(D) + S(eps));
      r[i] = ri;
      for (int64_t j = 0; j < D; ++j) yi[j] = w[j] * (xi[j] * ri);
    }
  });
}

// With x̂ = x r and g = dy w:  dx = r (g − x̂ mean(g x̂)),  dw = Σ_rows dy x̂ (per block of rows, then
// the blocks in order).
template <typename S>
void backward_rows(const S* dy, const S* x, const S* w, const S* r, S* dx, S* dw, int64_t N, int64_t D) {
  const int64_t blocks = (N + kRowBlock - 1) / kRowBlock;
  std::vector<S> partial(blocks * D, S(0));
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<S> g(D);
    for (int64_t b = b0; b < b1; ++b) {
      S* pw = partial.data() + b * D;
      for (int64_t i = b * kRowBlock; i < std::min(N, (b + 1) * kRowBlock); ++i) {
        const S* dyi = dy + i * D;
        const S* xi = x + i * D;
        const S ri = r[i];
        for (int64_t j = 0; j < D; ++j) {
          g[j] = dyi[j] * w[j];
          pw[j] += dyi[j] * (xi[j] * ri);
        }
        const S c = simd::dot(g.data(), xi, D) * ri / S(D);  // mean(g x̂)
        S* dxi = dx + i * D;
        for (int64_t j = 0; j < D; ++j) dxi[j] = ri * (g[j] - (xi[j] * ri) * c);
      }
    }
  });
  for (int64_t j = 0; j < D; ++j) dw[j] = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    const S* pw = partial.data() + b * D;
    for (int64_t j = 0; j < D; ++j) dw[j] += pw[j];
  }
}

struct RmsNormFn : public torch::autograd::Function<RmsNormFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            double eps) {
    const int64_t D = x.size(-1), N = x.numel() / std::max<int64_t>(D, 1);
    at::Tensor y = at::empty_like(x, at::MemoryFormat::Contiguous);
    at::Tensor r = at::empty({N}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mft_rms_norm", [&] {
      forward_rows<scalar_t>(x.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
                             y.mutable_data_ptr<scalar_t>(), r.mutable_data_ptr<scalar_t>(), N, D, eps);
    });
    ctx->save_for_backward({x, weight, r});
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const at::Tensor &x = s[0], &weight = s[1], &r = s[2];
    const at::Tensor dy = grads[0].contiguous();
    const int64_t D = x.size(-1), N = x.numel() / std::max<int64_t>(D, 1);
    at::Tensor dx = at::empty_like(x, at::MemoryFormat::Contiguous);
    at::Tensor dw = at::empty_like(weight);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mft_rms_norm_backward", [&] {
      backward_rows<scalar_t>(dy.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(),
                              weight.const_data_ptr<scalar_t>(), r.const_data_ptr<scalar_t>(),
                              dx.mutable_data_ptr<scalar_t>(), dw.mutable_data_ptr<scalar_t>(), N, D);
    });
    return {dx, weight.requires_grad() ? dw : at::Tensor(), at::Tensor()};
  }
};

bool fused_applies(const at::Tensor& x, const at::Tensor& weight) {
  const auto dt = x.scalar_type();
  return x.device().is_cpu() && weight.device().is_cpu() && (dt == at::kFloat || dt == at::kDouble) &&
         weight.scalar_type() == dt && x.is_contiguous() && weight.is_contiguous() && x.numel() > 0;
}

}  // namespace

at::Tensor rms_norm_reference(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor x32 = x.scalar_type() == at::kDouble ? x : x.to(at::kFloat);
  const at::Tensor normed = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  TORCH_CHECK(x.dim() >= 1 && weight.dim() == 1 && weight.size(0) == x.size(-1), "rms_norm: weight must be (",
              x.dim() >= 1 ? x.size(-1) : 0, ",) to match x's last dimension; got weight ", weight.sizes(), " for x ",
              x.sizes());
  if (!fused_applies(x, weight)) return rms_norm_reference(x, weight, eps);
  return RmsNormFn::apply(x, weight, eps);
}

}  // namespace mft
