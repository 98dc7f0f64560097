// Versioned binary archives for parameters, optimiser state and checkpoints: magic, format version,
// kind, payload, then an FNV-1a-64 checksum of every preceding byte. Files are written to a
// temporary file in the same directory and renamed over the target, so a reader never sees half a file.
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/types.hpp"

#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace dqs::nn {

static_assert(std::endian::native == std::endian::little, "dqs archives are little-endian");

// Layout (little-endian):
//   0   8  magic "DQSARCH\0"
//   8   4  u32 format version (archive_version)
//   12  4  u32 kind length K, then K bytes of kind (e.g. "dqs.nn.Mlp")
//   ..  8  u64 payload length P, then P payload bytes (the writer's values, in order)
//   ..  8  u64 FNV-1a-64 of all preceding bytes
// Payload values: u64/i64/f64 as 8 raw bytes; strings as u64 length + bytes; arrays as u32 scalar
// size (4 or 8) + u64 count + raw scalars; matrices as u64 rows + u64 cols + an array.
inline constexpr char archive_magic[8] = {'D', 'Q', 'S', 'A', 'R', 'C', 'H', '\0'};
inline constexpr std::uint32_t archive_version = 1;

inline std::uint64_t fnv1a64(const unsigned char* data, std::size_t n,
                             std::uint64_t hash = 0xcbf29ce484222325ull) {
  for (std::size_t i = 0; i < n; ++i) {
    hash ^= data[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}

class ArchiveWriter {
 public:
  explicit ArchiveWriter(std::string kind) : kind_(std::move(kind)) {}

  void write_u64(std::uint64_t v) { put(&v, sizeof v); }
  void write_i64(std::int64_t v) { put(&v, sizeof v); }
  void write_f64(double v) { put(&v, sizeof v); }
  void write_string(std::string_view s) {
    write_u64(s.size());
    put(s.data(), s.size());
  }
  template <Real S>
  void write_array(const S* data, std::size_t count) {
    const std::uint32_t size = sizeof(S);
    put(&size, sizeof size);
    write_u64(count);
    put(data, count * sizeof(S));
  }
  template <class Derived>
  void write_matrix(const Eigen::MatrixBase<Derived>& m) {
    using S = typename Derived::Scalar;
    const Matrix<S> dense = m;  // column-major, contiguous
    write_u64(static_cast<std::uint64_t>(dense.rows()));
    write_u64(static_cast<std::uint64_t>(dense.cols()));
    write_array(dense.data(), static_cast<std::size_t>(dense.size()));
  }

  // The whole archive, as save() writes it.
  std::vector<unsigned char> bytes() const {
    std::vector<unsigned char> out;
    const auto append = [&out](const void* p, std::size_t n) {
      const auto* b = static_cast<const unsigned char*>(p);
      out.insert(out.end(), b, b + n);
    };
    append(archive_magic, sizeof archive_magic);
    append(&archive_version, sizeof archive_version);
    const auto kind_length = static_cast<std::uint32_t>(kind_.size());
    append(&kind_length, sizeof kind_length);
    append(kind_.data(), kind_.size());
    const std::uint64_t payload_length = payload_.size();
    append(&payload_length, sizeof payload_length);
    append(payload_.data(), payload_.size());
    const std::uint64_t checksum = fnv1a64(out.data(), out.size());
    append(&checksum, sizeof checksum);
    return out;
  }

  // Writes `path` atomically: a temporary file beside it, then std::filesystem::rename over it.
  void save(const std::filesystem::path& path) const {
    const std::vector<unsigned char> data = bytes();
    std::filesystem::path temporary = path;
    temporary += unique_suffix();
    {
      std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
      if (!file) dqs::detail::fail("cannot save '", path.string(), "': cannot create ", temporary.string());
      file.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
      file.flush();
      if (!file) {
        file.close();
        std::error_code ignored;
        std::filesystem::remove(temporary, ignored);
        dqs::detail::fail("cannot save '", path.string(), "': write failed");
      }
    }
    std::error_code ec;
    std::filesystem::rename(temporary, path, ec);
    if (ec) {
      std::error_code ignored;
      std::filesystem::remove(temporary, ignored);
      dqs::detail::fail("cannot save '", path.string(), "': ", ec.message());
    }
  }

 private:
  // resize + memcpy rather than vector::insert of a byte range: GCC 12 at -O3 reports a false
  // -Wstringop-overflow inside the inlined insert (it loses track of the reallocated size).
  void put(const void* p, std::size_t n) {
    if (n == 0) return;
    const std::size_t old_size = payload_.size();
    payload_.resize(old_size + n);
    std::memcpy(payload_.data() + old_size, p, n);
  }

  // Distinct for concurrent writers in this process (counter, thread) and across processes (clock).
  static std::string unique_suffix() {
    static std::atomic<std::uint64_t> counter{0};
    const auto ticks = std::chrono::steady_clock::now().time_since_epoch().count();
    const auto thread = std::hash<std::thread::id>{}(std::this_thread::get_id());
    return ".tmp." + std::to_string(counter.fetch_add(1)) + "." + std::to_string(thread % 1000000) + "." +
           std::to_string(static_cast<std::uint64_t>(ticks));
  }

  std::string kind_;
  std::vector<unsigned char> payload_;
};

// Reads and verifies a whole archive on construction; then hands out the payload's values in the
// order they were written. Every problem is a std::invalid_argument naming the file.
class ArchiveReader {
 public:
  ArchiveReader(const std::filesystem::path& path, std::string_view expected_kind) : path_(path) {
    std::ifstream file(path, std::ios::binary | std::ios::ate);
    if (!file) fail("cannot open the file");
    const std::streamoff size = file.tellg();
    if (size < 0) fail("cannot read the file");
    data_.resize(static_cast<std::size_t>(size));
    file.seekg(0);
    file.read(reinterpret_cast<char*>(data_.data()), size);
    if (!file) fail("cannot read the file");

    constexpr std::size_t fixed = sizeof archive_magic + 4 + 4;
    if (data_.size() < fixed || std::memcmp(data_.data(), archive_magic, sizeof archive_magic) != 0)
      fail("not a dqs archive (bad magic bytes or truncated header)");
    std::uint32_t version = 0, kind_length = 0;
    std::memcpy(&version, data_.data() + 8, 4);
    std::memcpy(&kind_length, data_.data() + 12, 4);
    if (version != archive_version)
      fail("unsupported format version ", version, " (this build reads ", archive_version, ")");
    if (kind_length > 1024 || data_.size() < fixed + kind_length + 16)
      fail("truncated (", data_.size(), " bytes)");
    const std::string kind(reinterpret_cast<const char*>(data_.data()) + fixed, kind_length);
    std::uint64_t payload_length = 0;
    std::memcpy(&payload_length, data_.data() + fixed + kind_length, 8);
    begin_ = fixed + kind_length + 8;
    const std::size_t expected_size = begin_ + payload_length + 8;
    if (payload_length > data_.size() || data_.size() != expected_size)
      fail(data_.size() < expected_size ? "truncated (" : "unexpected trailing bytes (", data_.size(),
           " bytes, the header announces ", expected_size, ")");
    std::uint64_t stored = 0;
    std::memcpy(&stored, data_.data() + begin_ + payload_length, 8);
    if (fnv1a64(data_.data(), begin_ + payload_length) != stored) fail("checksum mismatch: the file is corrupt");
    if (kind != expected_kind) fail("holds a '", kind, "', expected a '", expected_kind, "'");
    end_ = begin_ + payload_length;
    at_ = begin_;
  }

  std::uint64_t read_u64(const char* what) { return get<std::uint64_t>(what); }
  std::int64_t read_i64(const char* what) { return get<std::int64_t>(what); }
  double read_f64(const char* what) { return get<double>(what); }
  std::string read_string(const char* what) {
    const std::uint64_t n = read_u64(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(data_.data() + at_), n);
    at_ += n;
    return s;
  }

  // Reads an array of exactly `count` scalars of type S into `out`.
  template <Real S>
  void read_array(S* out, std::size_t count, const char* what) {
    const auto size = get<std::uint32_t>(what);
    const std::uint64_t stored = read_u64(what);
    if (size != sizeof(S))
      fail(what, " is stored as ", size * 8, "-bit floats, expected ", sizeof(S) * 8, "-bit");
    if (stored != count) fail(what, " has ", stored, " values, expected ", count);
    need(count * sizeof(S), what);
    std::memcpy(out, data_.data() + at_, count * sizeof(S));
    at_ += count * sizeof(S);
  }
  // Reads a matrix of any shape.
  template <Real S>
  Matrix<S> read_matrix(const char* what) {
    const std::uint64_t rows = read_u64(what), cols = read_u64(what);
    if (rows > end_ || cols > end_ || (rows != 0 && cols > end_ / rows)) fail(what, " has an impossible shape");
    Matrix<S> m(static_cast<Index>(rows), static_cast<Index>(cols));
    read_array(m.data(), static_cast<std::size_t>(m.size()), what);
    return m;
  }
  // Reads a matrix that must have the given shape.
  template <Real S>
  void read_matrix_into(Matrix<S>& out, const char* what) {
    const std::uint64_t rows = read_u64(what), cols = read_u64(what);
    if (rows != static_cast<std::uint64_t>(out.rows()) || cols != static_cast<std::uint64_t>(out.cols()))
      fail(what, " is ", rows, "x", cols, ", expected ", out.rows(), "x", out.cols());
    Matrix<S> m(out.rows(), out.cols());
    read_array(m.data(), static_cast<std::size_t>(m.size()), what);
    out = m;
  }

  // Every payload byte must have been read.
  void finish() const {
    if (at_ != end_) fail(end_ - at_, " unread payload bytes (written by a different layout?)");
  }

  const std::filesystem::path& path() const { return path_; }

  template <class... Parts>
  [[noreturn]] void fail(Parts&&... parts) const {
    dqs::detail::fail("cannot load '", path_.string(), "': ", std::forward<Parts>(parts)...);
  }

 private:
  void need(std::uint64_t n, const char* what) const {
    if (n > end_ - at_) fail("payload ends inside ", what);
  }
  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return v;
  }

  std::filesystem::path path_;
  std::vector<unsigned char> data_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::size_t at_ = 0;
};

}  // namespace dqs::nn
