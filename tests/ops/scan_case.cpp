#include "scan_case.h"

#include "helpers.h"

#include <torch/autograd.h>

#include <sstream>

namespace mft::test {

std::string ScanCase::describe() const {
  std::ostringstream s;
  s << "b" << batch << " d" << dim << " n" << dstate << " l" << seqlen << " "
    << (bc == BcKind::Variable  ? "BC(b,n,l)"
        : bc == BcKind::Grouped ? "BC(b,g,n,l) g=" + std::to_string(groups)
                                : "BC(d,n)")
    << " " << dtype << (has_D ? " D" : "") << (has_z ? " z" : "") << (has_bias ? " bias" : "")
    << (softplus ? " softplus" : "") << (has_init ? " init" : "") << (last ? " last" : "")
    << (has_seq_idx ? " seq_idx" : "") << (non_contiguous ? " strided" : "");
  return s.str();
}

ScanInputs ScanInputs::make(const ScanCase& c) {
  ScanInputs in;
  const auto dt = c.dtype;
  const bool lowp = dt != at::kDouble;
  const auto param = lowp ? at::kFloat : at::kDouble;
  in.u = randn({c.batch, c.dim, c.seqlen}, dt);
  // Raw delta around -1 through softplus (~0.3), or directly positive in (0.05, 0.55).
  in.delta = c.softplus ? (at::randn({c.batch, c.dim, c.seqlen}, at::kDouble) * 0.5 - 1.0).to(dt)
                        : (at::rand({c.batch, c.dim, c.seqlen}, at::kDouble) * 0.5 + 0.05).to(dt);
  in.A = (-at::exp(at::randn({c.dim, c.dstate}, at::kDouble) * 0.5)).to(param);
  switch (c.bc) {
    case BcKind::Variable:
      in.B = randn({c.batch, c.dstate, c.seqlen}, dt);
      in.C = randn({c.batch, c.dstate, c.seqlen}, dt);
      break;
    case BcKind::Grouped:
      in.B = randn({c.batch, c.groups, c.dstate, c.seqlen}, dt);
      in.C = randn({c.batch, c.groups, c.dstate, c.seqlen}, dt);
      break;
    case BcKind::Invariant:
      in.B = randn({c.dim, c.dstate}, param);
      in.C = randn({c.dim, c.dstate}, param);
      break;
  }
  if (c.has_D) in.D = randn({c.dim}, param);
  if (c.has_z) in.z = randn({c.batch, c.dim, c.seqlen}, dt);
  // Without softplus delta + bias must stay positive, or exp(delta A) grows and the scan diverges.
  if (c.has_bias) in.bias = c.softplus ? randn({c.dim}, param, 0.5) : (at::rand({c.dim}, at::kDouble) * 0.2).to(param);
  if (c.has_init) in.init = randn({c.batch, c.dim, c.dstate}, param);
  if (c.has_seq_idx) in.seq_idx = packed_seq_idx(c.batch, c.seqlen);  // documents and padding
  if (c.non_contiguous) {
    in.u = non_contiguous(in.u);
    in.delta = non_contiguous(in.delta);
    if (in.z.defined()) in.z = non_contiguous(in.z);
    if (c.bc != BcKind::Invariant) in.B = in.B.transpose(-1, -2).contiguous().transpose(-1, -2);
  }
  in.softplus = c.softplus;
  in.last = c.last;
  return in;
}

ScanInputs ScanInputs::to_double() const {
  ScanInputs d = *this;
  for (at::Tensor* t : d.leaves()) {
    if (t->defined()) *t = t->to(at::kDouble);
  }
  return d;
}

std::vector<at::Tensor*> ScanInputs::leaves() {
  return {&u, &delta, &A, &B, &C, &D, &z, &bias, &init};
}
std::vector<std::string> ScanInputs::leaf_names() const {
  return {"u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state"};
}

ScanResult run_scan(ScanInputs in, Impl impl, const at::Tensor& w_out, const at::Tensor& w_last) {
  for (at::Tensor* t : in.leaves()) {
    if (t->defined()) *t = t->detach().requires_grad_(true);
  }
  auto fn = impl == Impl::Ops ? &mft::selective_scan : &mft::reference::selective_scan;
  auto [out, last] = fn(in.u, in.delta, in.A, in.B, in.C, opt(in.D), opt(in.z), opt(in.bias), in.softplus, opt(in.init),
                        in.last, opt(in.seq_idx));
  at::Tensor loss = (out.to(at::kDouble) * w_out).sum();
  if (in.last) loss = loss + (last.to(at::kDouble) * w_last).sum();
  loss.backward();
  ScanResult r{out.detach(), last.detach(), {}};
  for (at::Tensor* t : in.leaves()) r.grads.push_back(t->defined() ? t->grad() : at::Tensor());
  return r;
}

}  // namespace mft::test
