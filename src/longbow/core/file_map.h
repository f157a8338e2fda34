// Read-only memory mapping of a whole file (move-only RAII).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace longbow {

class FileMap {
 public:
  FileMap() = default;
  // Maps `path` read-only. Missing file or a directory -> std::invalid_argument;
  // open/stat/mmap failure -> std::runtime_error. `where` prefixes messages ("gguf", ...).
  FileMap(const std::string& path, const char* where);
  ~FileMap();
  FileMap(FileMap&& other) noexcept;
  FileMap& operator=(FileMap&& other) noexcept;
  FileMap(const FileMap&) = delete;
  FileMap& operator=(const FileMap&) = delete;

  const uint8_t* data() const { return data_; }  // nullptr for an empty file
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops this process's resident pages of [p, p + bytes) when the range lies inside the map
  // (whole pages only; they are read again from the file if touched). Returns whether it did.
  // For data that has been copied elsewhere (e.g. weights repacked by a backend).
  bool drop_pages(const void* p, size_t bytes) const;

 private:
  void release();
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// True when `path` names an existing directory / regular file.
bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);

}  // namespace longbow
