#pragma once
// Internal to the mamba_inner op files: the flat signature and the kernels composed from the other ops
// (csrc/ops/mamba_inner_composed.cpp). A CUDA implementation registers fused kernels for the same
// three schemas.
#include "ops/mamba_inner.h"

#include <array>
#include <tuple>
#include <vector>

namespace mft {

// The flat inputs in schema order (xz ... seq_idx).
#define MFT_MAMBA_INNER_PARAMS                                                                                      \
  const at::Tensor &xz, const at::Tensor &conv_weight, const OptTensor &conv_bias, const at::Tensor &x_proj_weight, \
      const at::Tensor &dt_proj_weight, const at::Tensor &out_proj_weight, const OptTensor &out_proj_bias,          \
      const at::Tensor &A, const OptTensor &D, const OptTensor &dt_bias, const OptTensor &x_proj_lora_A,            \
      const OptTensor &x_proj_lora_B, const OptTensor &dt_proj_lora_A, const OptTensor &dt_proj_lora_B,             \
      const OptTensor &out_proj_lora_A, const OptTensor &out_proj_lora_B, at::ArrayRef<double> lora_scales,         \
      double lora_dropout, bool training, std::optional<int64_t> dropout_seed, const OptTensor &seq_idx
#define MFT_MAMBA_INNER_ARGS                                                                                       \
  xz, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, out_proj_weight, out_proj_bias, A, D, dt_bias,        \
      x_proj_lora_A, x_proj_lora_B, dt_proj_lora_A, dt_proj_lora_B, out_proj_lora_A, out_proj_lora_B, lora_scales, \
      lora_dropout, training, dropout_seed, seq_idx

using MambaInnerSignature = at::Tensor(MFT_MAMBA_INNER_PARAMS);
using MambaInnerFwdResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;  // out, x_dbl, y, ckpt
using MambaInnerFwdSignature = MambaInnerFwdResult(MFT_MAMBA_INNER_PARAMS);
using MambaInnerBackwardSignature = std::vector<at::Tensor>(const at::Tensor& dout, const at::Tensor& x_dbl,
                                                            const at::Tensor& y, const at::Tensor& scan_checkpoints,
                                                            MFT_MAMBA_INNER_PARAMS,
                                                            std::array<bool, kMambaInnerGrads> output_mask);

// The flat inputs as the named struct (checks lora_scales has 3 values).
MambaInnerArgs mamba_inner_args(MFT_MAMBA_INNER_PARAMS);

at::Tensor mamba_inner_composed(MFT_MAMBA_INNER_PARAMS);
MambaInnerFwdResult mamba_inner_fwd_composed(MFT_MAMBA_INNER_PARAMS);
std::vector<at::Tensor> mamba_inner_backward_composed(const at::Tensor& dout, const at::Tensor& x_dbl,
                                                      const at::Tensor& y, const at::Tensor& scan_checkpoints,
                                                      MFT_MAMBA_INNER_PARAMS,
                                                      std::array<bool, kMambaInnerGrads> output_mask);

}  // namespace mft
