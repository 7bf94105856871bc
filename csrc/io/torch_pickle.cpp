#include "io/torch_pickle.h"

#include "io/zip_reader.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cctype>
#include <cstring>
#include <deque>
#include <fstream>
#include <set>
#include <unordered_map>

namespace mft::io {
namespace {
// Pickle opcodes (documented one by one in CPython's Lib/pickletools.py). Only these are understood;
// every other byte, including the text-mode opcodes of protocols 0/1 that torch.save never writes, is
// refused.
enum Op : uint8_t {
  kMark = '(',
  kStop = '.',
  kPop = '0',
  kPopMark = '1',
  kDup = '2',
  kBinFloat = 'G',
  kBinInt = 'J',
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kNone = 'N',
  kBinPersId = 'Q',
  kReduce = 'R',
  kBinUnicode = 'X',
  kAppend = 'a',
  kBuild = 'b',
  kGlobal = 'c',
  kDict = 'd',
  kAppends = 'e',
  kBinGet = 'h',
  kLongBinGet = 'j',
  kList = 'l',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kSetItem = 's',
  kTuple = 't',
  kSetItems = 'u',
  kEmptyDict = '}',
  kEmptyList = ']',
  kEmptyTuple = ')',
  kBinBytes = 'B',
  kShortBinBytes = 'C',
  kProto = 0x80,
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kLong1 = 0x8a,
  kShortBinUnicode = 0x8c,
  kBinUnicode8 = 0x8d,
  kBinBytes8 = 0x8e,
  kStackGlobal = 0x93,
  kMemoize = 0x94,
  kFrame = 0x95,
};

// torch.save writes protocol 2; 3-5 only add opcodes that are handled above.
constexpr int kMinProtocol = 2, kMaxProtocol = 5;
// More dimensions than any real tensor has; bounds the work a hostile size tuple can ask for.
constexpr size_t kMaxDims = 64;
// Longest module/name echoed in an error, so that a hostile GLOBAL cannot flood the message.
constexpr size_t kMaxEchoed = 80;

// The typed storage classes a state dict refers to, and the dtype of their elements.
struct StorageType {
  const char* name;
  at::ScalarType dtype;
};
constexpr StorageType kStorageTypes[] = {{"FloatStorage", at::kFloat},       {"HalfStorage", at::kHalf},
                                         {"BFloat16Storage", at::kBFloat16}, {"DoubleStorage", at::kDouble},
                                         {"LongStorage", at::kLong},         {"IntStorage", at::kInt},
                                         {"ShortStorage", at::kShort},       {"CharStorage", at::kChar},
                                         {"ByteStorage", at::kByte},         {"BoolStorage", at::kBool}};

enum class Kind { kNone, kBool, kInt, kFloat, kString, kBytes, kTuple, kList, kDict, kGlobal, kStorage, kTensor };
enum class Global { kOrderedDict, kRebuildTensorV2, kRebuildParameter, kStorageType };

// "an int", "a tuple", ...: for messages.
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "a bool";
    case Kind::kInt:
      return "an int";
    case Kind::kFloat:
      return "a float";
    case Kind::kString:
      return "a str";
    case Kind::kBytes:
      return "a bytes object";
    case Kind::kTuple:
      return "a tuple";
    case Kind::kList:
      return "a list";
    case Kind::kDict:
      return "a dict";
    case Kind::kGlobal:
      return "a class or function";
    case Kind::kStorage:
      return "a storage";
    case Kind::kTensor:
      return "a tensor";
  }
  return "?";
}

// One unpickled object. Containers point at other values of the same arena (the Unpickler owns them
// all), so shared and even cyclic references (BINGET of a list into itself) cost nothing and freeing is
// flat: no recursion a deeply nested hostile pickle could overflow.
struct Value {
  Kind kind = Kind::kNone;
  int64_t integer = 0;                          // kBool, kInt
  double real = 0;                              // kFloat
  std::string text;                             // kString, kBytes; kStorage: its key
  std::vector<Value*> items;                    // kTuple, kList
  std::vector<std::pair<Value*, Value*>> dict;  // kDict, in insertion order
  Global global = Global::kOrderedDict;         // kGlobal
  at::ScalarType dtype = at::kFloat;            // kGlobal (storage type), kStorage
  at::Tensor tensor;                            // kStorage: the flat storage (numel elements); kTensor
};

std::string hex_byte(uint8_t b) {
  const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

// Printable, bounded copy of a string read from the file.
std::string echo(const std::string& s) {
  std::string out;
  for (const char c : s.substr(0, kMaxEchoed)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return s.size() > kMaxEchoed ? out + "..." : out;
}

class Unpickler {
 public:
  Unpickler(const ZipArchive& zip, std::string prefix)
      : zip_(zip), prefix_(std::move(prefix)), pkl_name_(prefix_ + "/data.pkl") {}

  // Runs the pickle program up to STOP and returns the object it leaves on the stack.
  Value* run() {
    const auto [data, size] = zip_.bytes(pkl_name_);
    data_ = data;
    size_ = size;
    while (true) {
      op_pos_ = pos_;
      const uint8_t op = *take(1, "an opcode");
      if (op == kStop) {
        check(stack_.size() > base(), "STOP with nothing on the stack");
        return stack_.back();
      }
      step(op);
    }
  }

  // Errors name the file, the problem and where in data.pkl it was found.
  template <typename... Args>
  void check(bool cond, const Args&... args) const {
    TORCH_CHECK(cond, "torch pickle: ", zip_.path(), ": ", args..., " [", pkl_name_, " byte ", op_pos_, "]");
  }

  // The top-level dict as (name, tensor) pairs, refusing anything that is not a flat dict of tensors.
  std::vector<std::pair<std::string, at::Tensor>> state_dict(Value* root) {
    const std::string& path = zip_.path();
    TORCH_CHECK(root->kind == Kind::kDict, "torch pickle: ", path, ": the pickle holds ", kind_name(root->kind),
                ", not a dict of tensors (a state_dict)");
    std::vector<std::pair<std::string, at::Tensor>> out;
    std::set<std::string> seen;
    for (const auto& [k, v] : root->dict) {
      TORCH_CHECK(k->kind == Kind::kString, "torch pickle: ", path, ": a key of the top-level dict is ",
                  kind_name(k->kind), ", not a str");
      const std::string name = echo(k->text);
      TORCH_CHECK(v->kind != Kind::kDict, "torch pickle: ", path, ": value of '", name,
                  "' is a dict, not a tensor: this looks like a checkpoint with the state dict nested inside; "
                  "save the state dict itself (e.g. torch.save(ckpt['",
                  name, "'], path))");
      TORCH_CHECK(v->kind == Kind::kTensor, "torch pickle: ", path, ": value of '", name, "' is ", kind_name(v->kind),
                  ", not a tensor (only a flat dict of tensors is read)");
      TORCH_CHECK(seen.insert(k->text).second, "torch pickle: ", path, ": key '", name, "' appears twice");
      out.emplace_back(k->text, v->tensor);
    }
    return out;
  }

 private:
  void step(uint8_t op) {
    switch (op) {
      case kProto: {
        const int v = *take(1, "PROTO");
        check(v >= kMinProtocol && v <= kMaxProtocol, "pickle protocol ", v, " is not supported (", kMinProtocol,
              " to ", kMaxProtocol, ")");
        break;
      }
      case kFrame:
        take(8, "FRAME");
        break;  // frames only group opcodes for buffered reads; all is in memory
      case kMark:
        marks_.push_back(stack_.size());
        break;
      case kPop:
        pop();
        break;
      case kPopMark:
        stack_.resize(pop_mark());
        break;
      case kDup:
        push(top());
        break;
      case kNone:
        push(make(Kind::kNone));
        break;
      case kNewTrue:
        push(make_int(1, Kind::kBool));
        break;
      case kNewFalse:
        push(make_int(0, Kind::kBool));
        break;
      case kBinInt1:
        push(make_int(*take(1, "BININT1")));
        break;
      case kBinInt2:
        push(make_int(read_le(take(2, "BININT2"), 2)));
        break;
      case kBinInt:
        push(make_int(static_cast<int32_t>(read_le(take(4, "BININT"), 4))));
        break;
      case kLong1:
        push(make_int(read_long1()));
        break;
      case kBinFloat: {
        const uint8_t* p = take(8, "BINFLOAT");
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];  // big-endian, unlike everything else
        Value* v = make(Kind::kFloat);
        std::memcpy(&v->real, &bits, sizeof bits);
        push(v);
        break;
      }
      case kShortBinUnicode:
        push(make_text(Kind::kString, read_le(take(1, "SHORT_BINUNICODE"), 1)));
        break;
      case kBinUnicode:
        push(make_text(Kind::kString, read_le(take(4, "BINUNICODE"), 4)));
        break;
      case kBinUnicode8:
        push(make_text(Kind::kString, read_le(take(8, "BINUNICODE8"), 8)));
        break;
      case kShortBinBytes:
        push(make_text(Kind::kBytes, read_le(take(1, "SHORT_BINBYTES"), 1)));
        break;
      case kBinBytes:
        push(make_text(Kind::kBytes, read_le(take(4, "BINBYTES"), 4)));
        break;
      case kBinBytes8:
        push(make_text(Kind::kBytes, read_le(take(8, "BINBYTES8"), 8)));
        break;
      case kEmptyTuple:
        push(make(Kind::kTuple));
        break;
      case kTuple1:
      case kTuple2:
      case kTuple3: {
        const size_t n = op - kTuple1 + 1;
        check(stack_.size() >= base() + n, "TUPLE", n, " needs ", n, " values on the stack");
        Value* t = make(Kind::kTuple);
        t->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
        stack_.resize(stack_.size() - n);
        push(t);
        break;
      }
      case kTuple:
      case kList: {
        Value* v = make(op == kTuple ? Kind::kTuple : Kind::kList);
        v->items = items_since_mark();
        push(v);
        break;
      }
      case kEmptyList:
        push(make(Kind::kList));
        break;
      case kAppend: {
        Value* item = pop();
        expect(top(), Kind::kList, "APPEND target")->items.push_back(item);
        break;
      }
      case kAppends: {
        auto items = items_since_mark();
        auto& list = expect(top(), Kind::kList, "APPENDS target")->items;
        list.insert(list.end(), items.begin(), items.end());
        break;
      }
      case kEmptyDict:
        push(make(Kind::kDict));
        break;
      case kDict: {
        Value* d = make(Kind::kDict);
        set_items(d, items_since_mark());
        push(d);
        break;
      }
      case kSetItem: {
        Value* value = pop();
        Value* key = pop();
        set_items(top(), {key, value});
        break;
      }
      case kSetItems: {
        auto items = items_since_mark();
        set_items(top(), items);
        break;
      }
      case kGlobal: {
        const std::string module = read_line("GLOBAL module"), name = read_line("GLOBAL name");
        push(resolve_global(module, name));
        break;
      }
      case kStackGlobal: {
        const std::string name = expect(pop(), Kind::kString, "STACK_GLOBAL name")->text;
        const std::string module = expect(pop(), Kind::kString, "STACK_GLOBAL module")->text;
        push(resolve_global(module, name));
        break;
      }
      case kReduce: {
        Value* args = expect(pop(), Kind::kTuple, "REDUCE arguments");
        Value* callable = pop();
        push(call(callable, args->items));
        break;
      }
      case kBuild: {
        // state_dict() is an OrderedDict whose `_metadata` attribute is pickled as BUILD state: not needed.
        pop();
        expect(top(), Kind::kDict, "BUILD target (only a dict's _metadata state is accepted)");
        break;
      }
      case kBinPersId:
        push(persistent_load(expect(pop(), Kind::kTuple, "persistent id")));
        break;
      case kBinGet:
        push(memo_get(read_le(take(1, "BINGET"), 1)));
        break;
      case kLongBinGet:
        push(memo_get(read_le(take(4, "LONG_BINGET"), 4)));
        break;
      case kBinPut:
        memo_[read_le(take(1, "BINPUT"), 1)] = top();
        break;
      case kLongBinPut:
        memo_[read_le(take(4, "LONG_BINPUT"), 4)] = top();
        break;
      case kMemoize:
        memo_[memo_.size()] = top();
        break;
      default:
        check(false, "unknown or unsupported pickle opcode ", hex_byte(op),
              (op >= 0x20 && op < 0x7f) ? " '" + std::string(1, static_cast<char>(op)) + "'" : std::string(),
              " (only the opcodes torch.save writes for a state dict are read)");
    }
  }

  // ---- reading data.pkl ----
  const uint8_t* take(uint64_t n, const char* what) {
    check(n <= size_ - pos_, "data.pkl is truncated: ", what, " needs ", n, " bytes at byte ", pos_, " but only ",
          size_ - pos_, " remain");
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  static uint64_t read_le(const uint8_t* p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }
  // LONG1: a little-endian two's complement integer of n bytes (torch writes it for sizes >= 2^31).
  int64_t read_long1() {
    const int n = *take(1, "LONG1 length");
    check(n <= 8, "LONG1 integer of ", n, " bytes does not fit 64 bits");
    if (n == 0) return 0;
    const uint8_t* p = take(n, "LONG1");
    uint64_t v = read_le(p, n);
    if (n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign-extend
    return static_cast<int64_t>(v);
  }
  std::string read_line(const char* what) {
    const void* nl = std::memchr(data_ + pos_, '\n', size_ - pos_);
    check(nl != nullptr, "data.pkl is truncated: ", what, " has no terminating newline");
    const size_t len = static_cast<const uint8_t*>(nl) - (data_ + pos_);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len + 1;
    return s;
  }

  // ---- values and the stack ----
  Value* make(Kind kind) {
    arena_.emplace_back();
    arena_.back().kind = kind;
    return &arena_.back();
  }
  Value* make_int(int64_t v, Kind kind = Kind::kInt) {
    Value* x = make(kind);
    x->integer = v;
    return x;
  }
  Value* make_text(Kind kind, uint64_t len) {
    const uint8_t* p = take(len, kind == Kind::kString ? "a string" : "a bytes object");
    Value* v = make(kind);
    v->text.assign(reinterpret_cast<const char*>(p), len);
    return v;
  }
  // The stack above the innermost MARK is what opcodes may pop (as in CPython, where MARK starts a new stack).
  size_t base() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Value* v) { stack_.push_back(v); }
  Value* top() const {
    check(stack_.size() > base(), "an opcode needs a value but the stack is empty");
    return stack_.back();
  }
  Value* pop() {
    Value* v = top();
    stack_.pop_back();
    return v;
  }
  size_t pop_mark() {
    check(!marks_.empty(), "an opcode needs a MARK but there is none");
    const size_t m = marks_.back();
    marks_.pop_back();
    return m;
  }
  std::vector<Value*> items_since_mark() {
    const size_t m = pop_mark();
    std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Value* memo_get(uint64_t index) {
    const auto it = memo_.find(index);
    check(it != memo_.end(), "memo entry ", index, " is read before it is written");
    return it->second;
  }
  Value* expect(Value* v, Kind kind, const char* what) const {
    check(v->kind == kind, what, " must be ", kind_name(kind), "; got ", kind_name(v->kind));
    return v;
  }
  int64_t expect_int(Value* v, const char* what) const {
    check(v->kind == Kind::kInt || v->kind == Kind::kBool, what, " must be an int; got ", kind_name(v->kind));
    return v->integer;
  }
  void set_items(Value* dict, const std::vector<Value*>& items) {
    expect(dict, Kind::kDict, "SETITEM(S) target");
    check(items.size() % 2 == 0, "SETITEMS needs key/value pairs; got ", items.size(), " values");
    for (size_t i = 0; i < items.size(); i += 2) dict->dict.emplace_back(items[i], items[i + 1]);
  }

  // ---- the allow-list: the only names a pickle may refer to ----
  Value* resolve_global(const std::string& module, const std::string& name) {
    Value* g = make(Kind::kGlobal);
    if (module == "collections" && name == "OrderedDict") {
      g->global = Global::kOrderedDict;
      return g;
    }
    if (module == "torch._utils" && (name == "_rebuild_tensor_v2" || name == "_rebuild_parameter")) {
      g->global = name == "_rebuild_tensor_v2" ? Global::kRebuildTensorV2 : Global::kRebuildParameter;
      return g;
    }
    if (module == "torch") {
      for (const auto& s : kStorageTypes) {
        if (name == s.name) {
          g->global = Global::kStorageType;
          g->dtype = s.dtype;
          return g;
        }
      }
    }
    // Refused here, when the name is looked up: nothing can ever call it.
    TORCH_CHECK(false, "torch pickle: ", zip_.path(), ": pickle asks for global '", echo(module), ".", echo(name),
                "', which is not allowed (only tensor-rebuild globals are read; this file is not a plain "
                "state_dict) [",
                pkl_name_, " byte ", op_pos_, "]");
    return nullptr;
  }

  Value* call(Value* callable, const std::vector<Value*>& args) {
    expect(callable, Kind::kGlobal, "REDUCE callable");
    switch (callable->global) {
      case Global::kOrderedDict:
        check(args.empty(), "OrderedDict() is called with ", args.size(), " arguments; torch.save passes none");
        return make(Kind::kDict);
      case Global::kRebuildTensorV2:
        return rebuild_tensor(args);
      case Global::kRebuildParameter:
        // _rebuild_parameter(data, requires_grad, backward_hooks): the tensor is all we keep.
        check(args.size() == 3, "_rebuild_parameter takes 3 arguments; got ", args.size());
        return expect(args[0], Kind::kTensor, "_rebuild_parameter data");
      case Global::kStorageType:
        check(false, "a storage type is called; storages come only from persistent ids");
    }
    return nullptr;
  }

  // persistent id ('storage', StorageType, key, location, numel) -> the storage in <prefix>/data/<key>.
  Value* persistent_load(Value* pid) {
    const auto& f = pid->items;
    check(f.size() == 5 && f[0]->kind == Kind::kString && f[0]->text == "storage",
          "persistent id must be "
          "('storage', type, key, location, numel); got a tuple of ",
          f.size());
    Value* type = expect(f[1], Kind::kGlobal, "storage type");
    check(type->global == Global::kStorageType, "persistent id's storage type is not a torch.*Storage class");
    const std::string& key = expect(f[2], Kind::kString, "storage key")->text;
    expect(f[3], Kind::kString, "storage location");
    const int64_t numel = expect_int(f[4], "storage size");
    const std::string what = "storage '" + echo(key) + "'";
    check(numel >= 0, what, " has negative size ", numel);

    // Tied weights name the same key: hand out the same storage so that they share memory again.
    const auto seen = storages_.find(key);
    if (seen != storages_.end()) {
      Value* s = seen->second;
      check(s->dtype == type->dtype && s->tensor.numel() == numel, what, " is used as ", type->dtype, " x ", numel,
            " but earlier as ", s->dtype, " x ", s->tensor.numel());
      return s;
    }
    const std::string entry = prefix_ + "/data/" + key;
    check(zip_.contains(entry), what, " (", type->dtype, ", ", numel, " elements) has no entry '", echo(entry),
          "' in the archive");
    const auto [bytes, size] = zip_.bytes(entry);
    const size_t elem = c10::elementSize(type->dtype);
    uint64_t need = 0;
    check(!__builtin_mul_overflow(static_cast<uint64_t>(numel), elem, &need) && need <= size, what, " needs ", numel,
          " x ", elem, " bytes but entry '", echo(entry), "' has ", size);

    Value* s = make(Kind::kStorage);
    s->text = key;
    s->dtype = type->dtype;
    const auto options = at::TensorOptions().dtype(type->dtype);
    if (numel == 0) {
      s->tensor = at::empty({0}, options);
    } else if (reinterpret_cast<uintptr_t>(bytes) % elem == 0) {
      // Zero-copy: the tensor aliases the (private, copy-on-write) mapping and keeps it alive.
      auto keep = zip_.keep_alive();
      s->tensor = at::from_blob(
          zip_.mutable_data(entry), {numel}, [keep](void*) mutable { keep.reset(); }, options);
    } else {
      // Misaligned for the dtype (a hand-made archive without torch.save's padding): copy.
      s->tensor = at::empty({numel}, options);
      std::memcpy(s->tensor.data_ptr(), bytes, need);
    }
    storages_[key] = s;
    return s;
  }

  std::vector<int64_t> int_tuple(Value* v, const char* what) {
    expect(v, Kind::kTuple, what);
    check(v->items.size() <= kMaxDims, what, " has ", v->items.size(), " dimensions (at most ", kMaxDims, ")");
    std::vector<int64_t> out;
    for (Value* x : v->items) {
      out.push_back(expect_int(x, what));
      check(out.back() >= 0, what, " has a negative entry ", out.back());
    }
    return out;
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]):
  // as_strided over the storage, after checking that every element it reaches lies inside it.
  Value* rebuild_tensor(const std::vector<Value*>& args) {
    check(args.size() == 6 || args.size() == 7, "_rebuild_tensor_v2 takes 6 or 7 arguments; got ", args.size());
    Value* storage = expect(args[0], Kind::kStorage, "_rebuild_tensor_v2 storage");
    const int64_t offset = expect_int(args[1], "storage offset");
    const auto sizes = int_tuple(args[2], "tensor size");
    const auto strides = int_tuple(args[3], "tensor stride");
    check(sizes.size() == strides.size(), "tensor size has ", sizes.size(), " dimensions but stride has ",
          strides.size());
    check(offset >= 0, "storage offset ", offset, " is negative");
    // Metadata holds the conjugate/negative bits of complex views, which no state dict tensor here has.
    if (args.size() == 7) {
      check(args[6]->kind == Kind::kNone || (args[6]->kind == Kind::kDict && args[6]->dict.empty()),
            "tensor metadata (conjugate/negative bits) is not supported");
    }
    const int64_t storage_numel = storage->tensor.numel();
    const std::string where = "tensor of size " + c10::str(c10::IntArrayRef(sizes)) + ", stride " +
                              c10::str(c10::IntArrayRef(strides)) + ", offset " + std::to_string(offset) +
                              " over storage '" + echo(storage->text) + "' (" + std::to_string(storage_numel) +
                              " elements)";
    Value* t = make(Kind::kTensor);
    bool empty = false;
    for (const int64_t s : sizes) empty = empty || s == 0;
    if (empty) {
      t->tensor = at::empty(sizes, at::TensorOptions().dtype(storage->dtype));
      return t;
    }
    int64_t last = offset;  // the largest element index the tensor reaches
    bool overflow = false;
    for (size_t i = 0; i < sizes.size(); ++i) {
      int64_t step = 0;
      overflow = overflow || __builtin_mul_overflow(sizes[i] - 1, strides[i], &step) ||
                 __builtin_add_overflow(last, step, &last);
    }
    check(!overflow && last < storage_numel, where, " reaches element ",
          overflow ? std::string("(overflow)") : std::to_string(last), ", past the end of the storage");
    t->tensor = storage->tensor.as_strided(sizes, strides, offset);
    return t;
  }

  const ZipArchive& zip_;
  const std::string prefix_, pkl_name_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0, pos_ = 0, op_pos_ = 0;
  std::deque<Value> arena_;  // owns every value; a deque keeps their addresses stable
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;  // stack sizes at each open MARK
  std::unordered_map<uint64_t, Value*> memo_;
  std::unordered_map<std::string, Value*> storages_;  // by key, for tied weights
};

// torch.save files since PyTorch 1.6 are ZIP archives; tell the old formats apart from corruption.
void check_zip_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return;  // ZipArchive::open reports why
  char magic[4] = {};
  in.read(magic, 4);
  TORCH_CHECK(in.gcount() == 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0, "torch pickle: ", path,
              " is not a ZIP archive (torch.save writes ZIP archives since PyTorch 1.6; the older tar/raw pickle "
              "format is not supported)");
}
}  // namespace

std::vector<std::pair<std::string, at::Tensor>> load_torch_pickle_state_dict(const std::string& path) {
  check_zip_magic(path);
  const ZipArchive zip = ZipArchive::open(path);
  TORCH_CHECK(!zip.entries().empty(), "torch pickle: ", path, " is an empty ZIP archive");
  // Everything lives under one folder, named after the first entry's (as LibTorch's reader does).
  const std::string& first = zip.entries().front().name;
  const size_t slash = first.find('/');
  TORCH_CHECK(slash != std::string::npos && slash > 0, "torch pickle: ", path, ": first entry '", echo(first),
              "' is not inside a folder; torch.save archives keep everything under one");
  const std::string prefix = first.substr(0, slash);
  TORCH_CHECK(zip.contains(prefix + "/data.pkl"), "torch pickle: ", path, " has no '", echo(prefix),
              "/data.pkl': not a torch.save archive");
  if (zip.contains(prefix + "/byteorder")) {
    const auto [p, n] = zip.bytes(prefix + "/byteorder");
    std::string order(reinterpret_cast<const char*>(p), n);
    while (!order.empty() && std::isspace(static_cast<unsigned char>(order.back()))) order.pop_back();
    TORCH_CHECK(order == "little", "torch pickle: ", path, ": byteorder is '", echo(order),
                "'; only little-endian files are read");
  }
  Unpickler unpickler(zip, prefix);
  return unpickler.state_dict(unpickler.run());
}

}  // namespace mft::io
