#pragma once
// Legacy `pytorch_model.bin` checkpoints: torch.save(state_dict) files (../shared/reference/formats.md §2).
//   ZIP (stored entries, ZIP64) with one top-level folder <prefix>/ (the first entry's folder: "archive",
//   or the saved file's stem): <prefix>/data.pkl (pickle), <prefix>/data/<key> (raw little-endian storage
//   bytes, one entry per storage), <prefix>/byteorder ("little", since torch 2.1), <prefix>/version, ...
//
// The pickle is read by a restricted unpickler that never executes code: it understands the opcodes of
// protocol 2 that torch.save emits (plus the cheap protocol 3-5 ones: FRAME, MEMOIZE, SHORT_BINUNICODE,
// BINBYTES, STACK_GLOBAL, ...) and resolves only these globals:
//   collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and the
//   typed storages torch.{Float,Half,BFloat16,Double,Long,Int,Byte,Bool,Char,Short}Storage.
// Any other global (os.system, builtins.eval, torch.storage._load_from_bytes, ...) is refused at the
// GLOBAL opcode, before anything could call it. LibTorch's own unpickler cannot be used: it maps
// collections.OrderedDict to None and lacks SETITEM in the 1.13-era builds (formats.md §2.3).
#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace mft::io {

// Every tensor of the state dict in `path` (a torch.save file), in the order of the pickled dict.
//
// The top-level object must be a dict or OrderedDict whose keys are strings and whose values are tensors
// (or nn.Parameters); the OrderedDict's `_metadata` (its pickled BUILD state) is ignored. Anything else
// (a nested {'model': state_dict} checkpoint, an int, a list) is refused with an error naming the key.
//
// Each tensor has the dtype, sizes, strides and storage offset it was saved with (float32, float16,
// bfloat16, float64, int64, int32, int16, int8, uint8, bool), on the CPU, requires_grad false. It is a
// zero-copy view over the memory-mapped file (copy-on-write: writing to it never changes the file; the
// mapping lives as long as any tensor from it), so non-contiguous tensors stay non-contiguous and tensors
// that shared a storage when saved (tied weights, slices of one buffer) share memory again: call
// .contiguous() or .clone() where an independent, dense tensor is needed. A storage whose bytes are not
// aligned for its dtype (never the case for torch.save's 64-byte alignment) is copied instead.
//
// Errors (a c10::Error whose message names the file and the problem): not a ZIP archive or a corrupt one,
// compressed entries, a forbidden global, an unknown opcode, a missing storage entry, a storage too small
// for a tensor's sizes/strides/offset, a byteorder other than "little", a non-tensor value.
std::vector<std::pair<std::string, at::Tensor>> load_torch_pickle_state_dict(const std::string& path);

}  // namespace mft::io
