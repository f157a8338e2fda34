#include "longbow/core/safetensors_reader.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <string_view>

#include "longbow/core/check.h"
#include "longbow/core/name_mapping.h"

namespace longbow {

namespace {

constexpr uint64_t MAX_HEADER_BYTES = 100ull << 20;  // the format's own limit is 100 MB

[[noreturn]] void fail(const std::string& file, const std::string& msg) {
  longbow::fail("safetensors", file + ": " + msg);
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string parent_dir(const std::string& file) {
  const size_t slash = file.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : file.substr(0, slash);
}

bool supported_dtype(const std::string& s, DType& out) {
  if (s == "F32")
    out = DType::F32;
  else if (s == "F16")
    out = DType::F16;
  else if (s == "BF16")
    out = DType::BF16;
  else
    return false;
  return true;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

}  // namespace

std::string read_text_file(const std::string& path, const char* where) {
  FileMap m(path, where);
  return std::string(reinterpret_cast<const char*>(m.data()), m.size());
}

SafetensorsModel::SafetensorsModel(const std::string& path) : path_(path) {
  const std::string dir = is_directory(path) ? path : parent_dir(path);
  const std::string index_path = join_path(dir, "model.safetensors.index.json");
  const std::string single = join_path(dir, "model.safetensors");
  if (is_directory(path) && !is_regular_file(index_path) && !is_regular_file(single)) {
    throw std::invalid_argument(
        "[safetensors] " + path +
        ": folder has neither model.safetensors nor model.safetensors.index.json");
  }
  // The config comes first: tensor names map to canonical ones by architecture.
  config_ = config_from_hf(dir);
  arch_ = config_.architecture;
  if (is_directory(path)) {
    if (is_regular_file(index_path)) {
      const Json index = Json::parse(read_text_file(index_path, "safetensors"), index_path);
      const Json* wm = index.get("weight_map");
      if (wm == nullptr || !wm->is_object())
        fail(index_path, "expected an object 'weight_map' in the shard index");
      std::map<std::string, std::vector<std::string>> by_shard;  // shard file -> source names
      for (const auto& [name, shard] : wm->as_object("weight_map")) {
        if (!shard.is_string())
          fail(index_path, "weight_map[" + name + "]: expected a shard file name string");
        const std::string& s = shard.as_string(name);
        if (s.empty() || s.find('/') != std::string::npos || s == "." || s == "..") {
          fail(index_path, "weight_map[" + name + "]: shard name '" + s +
                               "' must be a plain file name in the folder");
        }
        by_shard[s].push_back(name);
      }
      if (by_shard.empty()) fail(index_path, "weight_map is empty");
      for (const auto& [shard, names] : by_shard) {
        const std::string file = join_path(dir, shard);
        if (!is_regular_file(file))
          fail(index_path, "shard " + shard + " listed in weight_map does not exist");
        add_file(file, &names);
      }
    } else {
      add_file(single, nullptr);
    }
  } else {
    add_file(path, nullptr);
  }
}

void SafetensorsModel::add_tensor(TensorInfo t) {
  if (index_.count(t.name) != 0) {
    const TensorInfo& other = tensors_[index_.at(t.name)];
    fail(t.file, "tensor " + t.source_name + ": maps to " + t.name + " which is also given by " +
                     other.source_name + " in " + other.file);
  }
  index_.emplace(t.name, tensors_.size());
  tensors_.push_back(std::move(t));
}

void SafetensorsModel::add_file(const std::string& file, const std::vector<std::string>* expected) {
  FileMap map(file, "safetensors");
  if (map.size() < 8)
    fail(file, "file of " + std::to_string(map.size()) +
                   " bytes is too small for the 8-byte header length");
  uint64_t header_bytes;
  std::memcpy(&header_bytes, map.data(), 8);
  if (header_bytes > MAX_HEADER_BYTES || header_bytes > map.size() - 8) {
    fail(file, "header length " + std::to_string(header_bytes) + " exceeds the file size " +
                   std::to_string(map.size()) + " (or the 100 MB limit)");
  }
  const std::string_view text(reinterpret_cast<const char*>(map.data() + 8),
                              static_cast<size_t>(header_bytes));
  const Json header = Json::parse(text, file + " (header)");
  if (!header.is_object())
    fail(file,
         std::string("header: expected a JSON object, found ") + Json::kind_name(header.kind()));
  const size_t data_start = 8 + static_cast<size_t>(header_bytes);
  const size_t data_size = map.size() - data_start;

  std::vector<TensorInfo> found;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, entry] : header.as_object("header")) {
    if (name == "__metadata__") continue;
    const std::string where = "tensor " + name;
    if (!entry.is_object())
      fail(file, where + ": expected an object with dtype, shape, data_offsets");
    const Json* jd = entry.get("dtype");
    const Json* js = entry.get("shape");
    const Json* jo = entry.get("data_offsets");
    if (jd == nullptr || !jd->is_string()) fail(file, where + ": missing string 'dtype'");
    if (js == nullptr || !js->is_array()) fail(file, where + ": missing array 'shape'");
    if (jo == nullptr || !jo->is_array() || jo->as_array(where).size() != 2)
      fail(file, where + ": 'data_offsets' must be [begin, end]");
    TensorInfo t;
    t.source_name = name;
    t.name = canonical_tensor_name(name, arch_);
    t.file = file;
    if (!supported_dtype(jd->as_string(where), t.dtype)) {
      fail(file,
           where + ": unsupported dtype " + jd->as_string(where) + " (expected F32, F16 or BF16)");
    }
    if (js->as_array(where).size() > 8) fail(file, where + ": more than 8 dimensions");
    uint64_t numel = 1;
    for (const Json& d : js->as_array(where)) {
      if (!d.is_integer() || d.as_int(where) < 0)
        fail(file, where + ": shape entries must be non-negative integers");
      const uint64_t n = static_cast<uint64_t>(d.as_int(where));
      if (n != 0 && numel > (std::numeric_limits<uint64_t>::max() / 4) / n)
        fail(file, where + ": shape product overflows");
      numel *= n;
      t.shape.push_back(static_cast<int64_t>(n));
    }
    const Json& b = jo->as_array(where)[0];
    const Json& e = jo->as_array(where)[1];
    if (!b.is_integer() || !e.is_integer() || b.as_int(where) < 0 ||
        e.as_int(where) < b.as_int(where)) {
      fail(file, where + ": data_offsets must be integers with 0 <= begin <= end");
    }
    const uint64_t begin = static_cast<uint64_t>(b.as_int(where));
    const uint64_t end = static_cast<uint64_t>(e.as_int(where));
    if (end > data_size) {
      fail(file, where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                     "] exceed data size " + std::to_string(data_size));
    }
    const uint64_t expected_bytes = numel * static_cast<uint64_t>(dtype_block_bytes(t.dtype));
    if (end - begin != expected_bytes) {
      fail(file, where + ": shape " + shape_text(t.shape) + " of " + jd->as_string(where) +
                     " needs " + std::to_string(expected_bytes) + " bytes, data_offsets give " +
                     std::to_string(end - begin));
    }
    t.data = map.data() + data_start + begin;
    t.bytes = static_cast<size_t>(end - begin);
    ranges.emplace_back(begin, end);
    found.push_back(std::move(t));
  }

  std::vector<size_t> order(found.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  uint64_t max_end = 0;  // furthest end seen so far, and who owns it
  size_t max_end_idx = 0;
  for (size_t i : order) {
    const auto& cur = ranges[i];
    if (cur.first < max_end && cur.second > cur.first) {
      fail(file, "tensor " + found[i].source_name + ": data_offsets [" + std::to_string(cur.first) +
                     ", " + std::to_string(cur.second) + "] overlap tensor " +
                     found[max_end_idx].source_name);
    }
    if (cur.second > max_end) {
      max_end = cur.second;
      max_end_idx = i;
    }
  }

  if (expected != nullptr) {
    std::set<std::string> present;
    for (const TensorInfo& t : found) present.insert(t.source_name);
    for (const std::string& n : *expected) {
      if (present.count(n) == 0)
        fail(file,
             "tensor " + n + ": listed in the shard index for this file but not present in it");
    }
  }
  for (TensorInfo& t : found) add_tensor(std::move(t));
  maps_.push_back(std::move(map));  // data pointers stay valid: moving a FileMap keeps the mapping
}

}  // namespace longbow
