#include "core/cast_cache.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/util/intrusive_ptr.h>

#include <map>
#include <mutex>
#include <tuple>
#include <utility>
#include <vector>

namespace mft {
namespace {
// A tensor is identified by what it reads: its storage, offset, sizes, strides and dtype. Views made
// afresh at each forward (e.g. the conv weight's (E, K) view) so hit the entry of their first call;
// they share the version counter of the tensor they view.
using Key = std::tuple<const c10::StorageImpl*, int64_t, std::vector<int64_t>, std::vector<int64_t>, at::ScalarType,
                       at::ScalarType>;

struct Entry {
  c10::weak_intrusive_ptr<c10::StorageImpl> storage;
  uint32_t version = 0;
  const void* data = nullptr;
  at::Tensor cast;
};

struct Cache {
  std::mutex mutex;
  std::map<Key, Entry> entries;

  // Entries whose storage died (its address may be reused) go first.
  void drop_dead() {
    for (auto it = entries.begin(); it != entries.end();) {
      it = it->second.storage.expired() ? entries.erase(it) : std::next(it);
    }
  }
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may be released after static destruction
  return *c;
}

bool cacheable(const at::Tensor& t, at::ScalarType dtype) {
  return t.defined() && t.scalar_type() != dtype && !t.requires_grad() && !t.is_inference() && t.has_storage() &&
         !t.is_sparse();
}
}  // namespace

at::Tensor cached_cast(const at::Tensor& t, at::ScalarType dtype) {
  if (!cacheable(t, dtype)) return t.defined() ? t.to(dtype) : t;
  Cache& c = cache();
  const std::lock_guard<std::mutex> lock(c.mutex);
  Key key{t.storage().unsafeGetStorageImpl(),
          t.storage_offset(),
          t.sizes().vec(),
          t.strides().vec(),
          t.scalar_type(),
          dtype};
  auto it = c.entries.find(key);
  if (it != c.entries.end() && !it->second.storage.expired() && it->second.version == t._version() &&
      it->second.data == t.const_data_ptr()) {
    return it->second.cast;
  }
  c.drop_dead();
  at::Tensor out;
  {
    at::NoGradGuard no_grad;  // a plain copy, never part of a graph
    out = t.to(dtype);
  }
  c.entries.insert_or_assign(std::move(key),
                             Entry{t.storage().getWeakStorageImpl(), t._version(), t.const_data_ptr(), out});
  return out;
}

at::Tensor autocast_weight(const at::Tensor& t) {
  if (!t.defined() || !t.is_floating_point() || t.scalar_type() == at::kDouble) return t;
  const c10::DeviceType device = t.device().type();
  if (!at::autocast::is_autocast_enabled(device)) return t;
  const at::ScalarType act = at::autocast::get_autocast_dtype(device);
  return t.scalar_type() == act ? t : cached_cast(t, act);
}

void clear_cast_cache() {
  Cache& c = cache();
  const std::lock_guard<std::mutex> lock(c.mutex);
  c.entries.clear();
}

size_t cast_cache_size() {
  Cache& c = cache();
  const std::lock_guard<std::mutex> lock(c.mutex);
  c.drop_dead();
  return c.entries.size();
}

}  // namespace mft
