#include "longbow/core/gguf_reader.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "longbow/core/check.h"

namespace longbow {

namespace {

constexpr uint32_t GGUF_MAGIC = 0x46554747;  // "GGUF" little-endian
constexpr int MAX_DIMS = 4;
constexpr int MAX_ARRAY_NESTING = 8;

enum GgufType : uint32_t {
  T_U8 = 0,
  T_I8 = 1,
  T_U16 = 2,
  T_I16 = 3,
  T_U32 = 4,
  T_I32 = 5,
  T_F32 = 6,
  T_BOOL = 7,
  T_STRING = 8,
  T_ARRAY = 9,
  T_U64 = 10,
  T_I64 = 11,
  T_F64 = 12,
};

// Smallest encoded size of one value of each type (used to bound counts by the bytes left).
size_t min_value_bytes(uint32_t t) {
  switch (t) {
    case T_U8:
    case T_I8:
    case T_BOOL: return 1;
    case T_U16:
    case T_I16: return 2;
    case T_U32:
    case T_I32:
    case T_F32: return 4;
    case T_U64:
    case T_I64:
    case T_F64:
    case T_STRING: return 8;
    case T_ARRAY: return 12;
    default: return 0;
  }
}

// ggml type id -> our dtype; false when unsupported.
bool ggml_type_to_dtype(uint32_t id, DType& out) {
  switch (id) {
    case 0: out = DType::F32; return true;
    case 1: out = DType::F16; return true;
    case 2: out = DType::Q4_0; return true;
    case 3: out = DType::Q4_1; return true;
    case 8: out = DType::Q8_0; return true;
    case 30: out = DType::BF16; return true;
    default: return false;
  }
}

// Bounds-checked little-endian reader over the mapping.
class Cursor {
 public:
  Cursor(const uint8_t* base, size_t size, const std::string& path)
      : base_(base), size_(size), path_(path) {}
  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }
  [[noreturn]] void fail(const std::string& msg) const {
    longbow::fail("gguf", path_ + ": " + msg);
  }
  void need(size_t n, const char* what) const {
    if (n > left()) {
      fail(std::string("truncated file: reading ") + what + " at byte " + std::to_string(pos_) +
           " needs " + std::to_string(n) + " bytes, only " + std::to_string(left()) +
           " left (file size " + std::to_string(size_) + ")");
    }
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    if (n > left()) {
      fail(std::string("string length ") + std::to_string(n) + " of " + what + " at byte " +
           std::to_string(pos_ - 8) + " exceeds the " + std::to_string(left()) +
           " bytes left in the file");
    }
    std::string s(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  // Checks that `count` items of at least `min_bytes` each can fit in the rest of the file.
  void check_count(uint64_t count, size_t min_bytes, const std::string& what) const {
    if (min_bytes > 0 && count > left() / min_bytes) {
      fail(what + " " + std::to_string(count) + " is absurd: at least " +
           std::to_string(min_bytes) + " bytes each would exceed the " + std::to_string(left()) +
           " bytes left in the file");
    }
  }

 private:
  const uint8_t* base_;
  size_t size_;
  const std::string& path_;
  size_t pos_ = 0;
};

std::string type_text(uint32_t t) { return "value type " + std::to_string(t); }

// Reads one scalar and widens it: ints -> int64 (u64 -> uint64), floats -> double.
GgufValue read_scalar(Cursor& c, uint32_t t, const std::string& key) {
  switch (t) {
    case T_U8: return static_cast<int64_t>(c.read<uint8_t>("u8 value"));
    case T_I8: return static_cast<int64_t>(c.read<int8_t>("i8 value"));
    case T_U16: return static_cast<int64_t>(c.read<uint16_t>("u16 value"));
    case T_I16: return static_cast<int64_t>(c.read<int16_t>("i16 value"));
    case T_U32: return static_cast<int64_t>(c.read<uint32_t>("u32 value"));
    case T_I32: return static_cast<int64_t>(c.read<int32_t>("i32 value"));
    case T_U64: return c.read<uint64_t>("u64 value");
    case T_I64: return c.read<int64_t>("i64 value");
    case T_F32: return static_cast<double>(c.read<float>("f32 value"));
    case T_F64: return c.read<double>("f64 value");
    case T_BOOL: {
      const uint8_t b = c.read<uint8_t>("bool value");
      if (b > 1) c.fail("key " + key + ": bool value must be 0 or 1, found " + std::to_string(b));
      return b == 1;
    }
    case T_STRING: return c.read_string("string value");
    default: c.fail("key " + key + ": unknown " + type_text(t) + " (expected 0..12)");
  }
}

// Skips (validating) an array nested inside an array; nested arrays are not kept in metadata.
void skip_array(Cursor& c, const std::string& key, int depth) {
  if (depth > MAX_ARRAY_NESTING)
    c.fail("key " + key + ": arrays nested deeper than " + std::to_string(MAX_ARRAY_NESTING));
  const uint32_t et = c.read<uint32_t>("array element type");
  const uint64_t n = c.read<uint64_t>("array length");
  if (min_value_bytes(et) == 0) c.fail("key " + key + ": unknown array element " + type_text(et));
  c.check_count(n, min_value_bytes(et), "key " + key + ": array length");
  for (uint64_t i = 0; i < n; ++i) {
    if (et == T_ARRAY)
      skip_array(c, key, depth + 1);
    else
      read_scalar(c, et, key);
  }
}

GgufValue read_array(Cursor& c, const std::string& key, bool& keep) {
  const uint32_t et = c.read<uint32_t>("array element type");
  const uint64_t n = c.read<uint64_t>("array length");
  if (min_value_bytes(et) == 0) c.fail("key " + key + ": unknown array element " + type_text(et));
  c.check_count(n, min_value_bytes(et), "key " + key + ": array length");
  keep = true;
  if (et == T_ARRAY) {
    for (uint64_t i = 0; i < n; ++i) skip_array(c, key, 2);
    keep = false;
    return int64_t{0};
  }
  if (et == T_STRING) {
    std::vector<std::string> v;
    v.reserve(n);
    for (uint64_t i = 0; i < n; ++i) v.push_back(c.read_string("array string"));
    return v;
  }
  if (et == T_BOOL) {
    std::vector<bool> v;
    v.reserve(n);
    for (uint64_t i = 0; i < n; ++i) v.push_back(std::get<bool>(read_scalar(c, et, key)));
    return v;
  }
  if (et == T_F32 || et == T_F64) {
    std::vector<double> v;
    v.reserve(n);
    for (uint64_t i = 0; i < n; ++i) v.push_back(std::get<double>(read_scalar(c, et, key)));
    return v;
  }
  std::vector<int64_t> v;
  v.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    GgufValue s = read_scalar(c, et, key);
    v.push_back(et == T_U64 ? static_cast<int64_t>(std::get<uint64_t>(s)) : std::get<int64_t>(s));
  }
  return v;
}

struct RawTensor {
  std::string name;
  std::vector<int64_t> ne;  // innermost first, as stored
  uint32_t type = 0;
  uint64_t offset = 0;
};

RawTensor read_tensor_info(Cursor& c) {
  RawTensor t;
  t.name = c.read_string("tensor name");
  const uint32_t n_dims = c.read<uint32_t>("tensor n_dims");
  if (n_dims == 0 || n_dims > MAX_DIMS) {
    c.fail("tensor " + t.name + ": n_dims must be in 1.." + std::to_string(MAX_DIMS) + ", found " +
           std::to_string(n_dims));
  }
  for (uint32_t d = 0; d < n_dims; ++d) {
    const int64_t ne = c.read<int64_t>("tensor dimension");
    if (ne <= 0)
      c.fail("tensor " + t.name + ": dimension " + std::to_string(d) + " must be > 0, found " +
             std::to_string(ne));
    t.ne.push_back(ne);
  }
  t.type = c.read<uint32_t>("tensor type");
  t.offset = c.read<uint64_t>("tensor offset");
  return t;
}

// Bytes of a tensor with dims `ne` (innermost first); throws on overflow or partial blocks.
size_t tensor_nbytes(const RawTensor& t, DType dt, Cursor& c) {
  const int64_t be = dtype_block_elems(dt);
  if (t.ne[0] % be != 0) {
    c.fail("tensor " + t.name + ": row length " + std::to_string(t.ne[0]) +
           " is not a multiple of the " + dtype_name(dt) + " block size " + std::to_string(be));
  }
  const uint64_t limit = std::numeric_limits<uint64_t>::max() / 2;
  uint64_t bytes =
      static_cast<uint64_t>(t.ne[0] / be) * static_cast<uint64_t>(dtype_block_bytes(dt));
  for (size_t d = 1; d < t.ne.size(); ++d) {
    const uint64_t ne = static_cast<uint64_t>(t.ne[d]);
    if (bytes != 0 && ne > limit / bytes)
      c.fail("tensor " + t.name + ": size of dimensions overflows");
    bytes *= ne;
  }
  return static_cast<size_t>(bytes);
}

}  // namespace

GgufFile::GgufFile(const std::string& path) : map_(path, "gguf") { parse(); }

void GgufFile::parse() {
  const std::string& p = map_.path();
  Cursor c(map_.data(), map_.size(), p);
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != GGUF_MAGIC) {
    char found[5] = {};
    std::memcpy(found, &magic, 4);
    for (int i = 0; i < 4; ++i) found[i] = (found[i] >= 32 && found[i] < 127) ? found[i] : '?';
    c.fail(std::string("bad magic: expected 'GGUF', found '") + found + "'");
  }
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3)
    c.fail("unsupported version " + std::to_string(version_) + " (expected 2 or 3)");
  const uint64_t num_tensors = c.read<uint64_t>("tensor count");
  const uint64_t num_kv = c.read<uint64_t>("metadata key/value count");
  c.check_count(num_tensors, 8 + 4 + 8 + 4 + 8, "tensor count");
  c.check_count(num_kv, 8 + 4 + 1, "metadata key/value count");

  for (uint64_t i = 0; i < num_kv; ++i) {
    const std::string key = c.read_string("metadata key");
    const uint32_t t = c.read<uint32_t>("metadata value type");
    bool keep = true;
    GgufValue v = (t == T_ARRAY) ? read_array(c, key, keep) : read_scalar(c, t, key);
    if (keep && !metadata_.emplace(key, std::move(v)).second)
      c.fail("duplicate metadata key " + key);
  }
  if (auto it = metadata_.find("general.alignment"); it != metadata_.end()) {
    const int64_t* a = std::get_if<int64_t>(&it->second);
    if (a == nullptr || *a <= 0 || (*a & (*a - 1)) != 0 || *a > (1 << 20)) {
      c.fail("general.alignment must be a power of two integer, found an invalid value");
    }
    alignment_ = static_cast<size_t>(*a);
  }

  std::vector<RawTensor> raw;
  raw.reserve(num_tensors);
  for (uint64_t i = 0; i < num_tensors; ++i) raw.push_back(read_tensor_info(c));

  const size_t data_start = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  const size_t data_size = data_start <= map_.size() ? map_.size() - data_start : 0;
  if (num_tensors > 0 && data_start > map_.size()) {
    c.fail("data section starts at byte " + std::to_string(data_start) + " beyond the file size " +
           std::to_string(map_.size()));
  }

  std::map<std::string, size_t> seen;
  tensors_.reserve(raw.size());
  for (const RawTensor& r : raw) {
    DType dt;
    if (!ggml_type_to_dtype(r.type, dt)) {
      c.fail("tensor " + r.name + ": unsupported ggml type " + std::to_string(r.type) +
             " (supported: F32=0, F16=1, Q4_0=2, Q4_1=3, Q8_0=8, BF16=30)");
    }
    if (!seen.emplace(r.name, tensors_.size()).second) c.fail("duplicate tensor name " + r.name);
    const size_t nbytes = tensor_nbytes(r, dt, c);
    if (r.offset % alignment_ != 0) {
      c.fail("tensor " + r.name + ": offset " + std::to_string(r.offset) +
             " is not a multiple of the alignment " + std::to_string(alignment_));
    }
    if (r.offset > data_size || nbytes > data_size - r.offset) {
      c.fail("tensor " + r.name + ": offset " + std::to_string(r.offset) + " + " +
             std::to_string(nbytes) + " bytes exceeds data size " + std::to_string(data_size));
    }
    TensorInfo ti;
    ti.name = r.name;
    ti.source_name = r.name;
    ti.file = p;
    ti.dtype = dt;
    ti.shape.assign(r.ne.rbegin(), r.ne.rend());
    ti.data = map_.data() + data_start + r.offset;
    ti.bytes = nbytes;
    tensors_.push_back(std::move(ti));
  }

  // Overlap check on tensors sorted by offset.
  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->data < b->data; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo* prev = by_offset[i - 1];
    const TensorInfo* cur = by_offset[i];
    if (prev->data + prev->bytes > cur->data) {
      c.fail("tensor " + cur->name + ": data at offset " +
             std::to_string(cur->data - map_.data() - data_start) + " overlaps tensor " +
             prev->name + " (offset " + std::to_string(prev->data - map_.data() - data_start) +
             " + " + std::to_string(prev->bytes) + " bytes)");
    }
  }
  index_ = std::move(seen);
  config_ = config_from_gguf(
      metadata_, [this](const std::string& name) { return find(name) != nullptr; }, p);
}

}  // namespace longbow
