// NumPy .npy files for batches: a D×N column-major batch is byte-identical to an (N, D) C-order
// array, so I/O is one block copy (plus a cast, or a transpose for Fortran order). xtensor checks
// the magic and writes the header; the dict is parsed here, strictly. Writes are atomic.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>
#include <xtensor/xnpy.hpp>

#include "dqs/detail/check.hpp"
#include "dqs/types.hpp"

namespace dqs::io {

namespace detail {

[[noreturn]] inline void read_fail(const std::string& path, const std::string& problem) {
  dqs::detail::fail("read_npy(\"", path, "\"): ", problem);
}

// What a .npy header says about the array that follows it.
struct NpyHeader {
  std::size_t word_size = 0;  // 4 (float32) or 8 (float64)
  bool swap_bytes = false;    // the file's byte order differs from this machine's
  bool fortran_order = false;
  std::vector<std::size_t> shape;
  std::uintmax_t data_bytes = 0;
};

inline std::uint32_t little_endian_length(const unsigned char* bytes, int count) {
  std::uint32_t value = 0;
  for (int i = count - 1; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

// Parses the header's Python dict literal {'descr': '<f8', 'fortran_order': False, 'shape': (N, D), }
// in any key order. (xtensor's parse_header is not used: it builds a std::regex, which GCC 12 with
// sanitizers flags under -Werror, requires the keys in one order and reads shape entries that are
// not digits into uninitialised values.)
inline void parse_header_dict(const std::string& text, std::string& descr, bool& fortran_order,
                              std::vector<std::size_t>& shape) {
  std::size_t at = 0;
  auto skip_space = [&] {
    while (at < text.size() && (text[at] == ' ' || text[at] == '\n' || text[at] == '\t')) ++at;
  };
  auto expect = [&](char c) {
    skip_space();
    if (at >= text.size() || text[at] != c) throw std::invalid_argument(std::string("expected '") + c + "'");
    ++at;
  };
  auto quoted = [&] {
    skip_space();
    if (at >= text.size() || (text[at] != '\'' && text[at] != '"'))
      throw std::invalid_argument("expected a string");
    const char quote = text[at++];
    const std::size_t close = text.find(quote, at);
    if (close == std::string::npos) throw std::invalid_argument("unterminated string");
    std::string value = text.substr(at, close - at);
    at = close + 1;
    return value;
  };
  bool seen_descr = false, seen_order = false, seen_shape = false;
  expect('{');
  for (;;) {
    skip_space();
    if (at < text.size() && text[at] == '}') break;
    const std::string key = quoted();
    expect(':');
    skip_space();
    if (key == "descr") {
      descr = quoted();
      seen_descr = true;
    } else if (key == "fortran_order") {
      if (text.compare(at, 4, "True") == 0) {
        fortran_order = true;
        at += 4;
      } else if (text.compare(at, 5, "False") == 0) {
        fortran_order = false;
        at += 5;
      } else {
        throw std::invalid_argument("fortran_order is not True or False");
      }
      seen_order = true;
    } else if (key == "shape") {
      expect('(');
      shape.clear();
      for (;;) {
        skip_space();
        if (at < text.size() && text[at] == ')') break;
        if (at >= text.size() || text[at] < '0' || text[at] > '9')
          throw std::invalid_argument("shape entries must be non-negative integers");
        std::size_t extent = 0;
        while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
          const std::size_t digit = static_cast<std::size_t>(text[at++] - '0');
          if (extent > (std::numeric_limits<std::size_t>::max() - digit) / 10)
            throw std::invalid_argument("shape entry too large");
          extent = extent * 10 + digit;
        }
        shape.push_back(extent);
        skip_space();
        if (at < text.size() && text[at] == ',')
          ++at;
        else if (at >= text.size() || text[at] != ')')
          throw std::invalid_argument("expected ',' or ')' in shape");
      }
      ++at;
      seen_shape = true;
    } else {
      throw std::invalid_argument("unexpected key '" + key + "'");
    }
    skip_space();
    if (at < text.size() && text[at] == ',')
      ++at;
    else if (at >= text.size() || text[at] != '}')
      throw std::invalid_argument("expected ',' or '}'");
  }
  ++at;
  skip_space();
  if (at != text.size()) throw std::invalid_argument("text after the dict");
  if (!seen_descr || !seen_order || !seen_shape)
    throw std::invalid_argument("missing 'descr', 'fortran_order' or 'shape'");
}

// Reads and checks the header; leaves `in` at the first data byte. `file_bytes` is the file size,
// so that a truncated (or over-long) file is rejected before any allocation.
inline NpyHeader read_npy_header(std::istream& in, const std::string& path, std::uintmax_t file_bytes) {
  unsigned char major = 0, minor = 0;
  try {
    xt::detail::read_magic(in, &major, &minor);
  } catch (const std::runtime_error&) {
    read_fail(path, "not a .npy file (bad magic string or shorter than 8 bytes)");
  }
  if (major < 1 || major > 3 || minor != 0)
    read_fail(path, "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor));

  // xtensor's read_header_1_0/2_0 read the length through signed chars, which misreads lengths
  // with a byte >= 0x80 (numpy writes e.g. 182); read it here unsigned.
  const int length_bytes = major == 1 ? 2 : 4;
  unsigned char length_le[4] = {0, 0, 0, 0};
  in.read(reinterpret_cast<char*>(length_le), length_bytes);
  if (!in) read_fail(path, "truncated .npy header");
  const std::uint32_t header_length = little_endian_length(length_le, length_bytes);
  const std::uintmax_t data_offset = 8u + static_cast<std::uintmax_t>(length_bytes) + header_length;
  if (data_offset > file_bytes)
    read_fail(path, "truncated .npy header: it claims " + std::to_string(header_length) +
                        " bytes, the file holds " + std::to_string(file_bytes) + " in all");
  std::string header(header_length, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_length));
  if (!in) read_fail(path, "truncated .npy header");

  NpyHeader result;
  std::string descr;
  try {
    parse_header_dict(header, descr, result.fortran_order, result.shape);
  } catch (const std::invalid_argument& error) {
    const auto last = header.find_last_not_of(" \n");
    read_fail(path, std::string("malformed .npy header (") + error.what() +
                        "): " + header.substr(0, last == std::string::npos ? 0 : last + 1));
  }

  const char order = descr.empty() ? '?' : descr[0];
  if (descr == "<f4" || descr == ">f4")
    result.word_size = 4;
  else if (descr == "<f8" || descr == ">f8")
    result.word_size = 8;
  else
    read_fail(path, "dtype '" + descr + "' is not float32/float64");
  result.swap_bytes = (order == '<') != (std::endian::native == std::endian::little);

  if (result.shape.empty() || result.shape.size() > 2)
    read_fail(path, "ndim " + std::to_string(result.shape.size()) + " is not 1 or 2");

  std::uintmax_t elements = 1;
  for (const std::size_t extent : result.shape) {
    if (extent > static_cast<std::uintmax_t>(std::numeric_limits<Index>::max()) ||
        (extent != 0 && elements > std::numeric_limits<std::uintmax_t>::max() / 8 / extent))
      read_fail(path, "shape entry " + std::to_string(extent) + " is too large");
    elements *= extent;
  }
  result.data_bytes = elements * result.word_size;
  const std::uintmax_t available = file_bytes - data_offset;
  if (available < result.data_bytes)
    read_fail(path, "truncated data: the header promises " + std::to_string(result.data_bytes) +
                        " bytes, the file holds " + std::to_string(available));
  if (available > result.data_bytes)
    read_fail(path, std::to_string(available - result.data_bytes) +
                        " unexpected bytes after the data the header describes");
  return result;
}

template <class T>
void swap_bytes(T* data, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    auto* bytes = reinterpret_cast<unsigned char*>(data + i);
    std::reverse(bytes, bytes + sizeof(T));
  }
}

// Reads the data as file type F into an M×K column-major matrix (M = fastest-varying extent).
template <Real F>
Matrix<F> read_block(std::istream& in, const std::string& path, const NpyHeader& header, Index rows,
                     Index cols) {
  Matrix<F> block(rows, cols);
  in.read(reinterpret_cast<char*>(block.data()), static_cast<std::streamsize>(header.data_bytes));
  if (static_cast<std::uintmax_t>(in.gcount()) != header.data_bytes)
    read_fail(path, "could not read the data (file changed or I/O error)");
  if (header.swap_bytes) swap_bytes(block.data(), static_cast<std::size_t>(block.size()));
  return block;
}

template <Real S, Real F>
Matrix<S> read_as(std::istream& in, const std::string& path, const NpyHeader& header) {
  const bool two_d = header.shape.size() == 2;
  const Index points = static_cast<Index>(header.shape[0]);
  const Index dim = two_d ? static_cast<Index>(header.shape[1]) : 1;
  if (two_d && header.fortran_order) {
    // Fortran (N, D) data is an N×D column-major matrix: transpose it into the D×N batch.
    return read_block<F>(in, path, header, points, dim).transpose().template cast<S>();
  }
  if constexpr (std::same_as<S, F>)
    return read_block<F>(in, path, header, dim, points);
  else
    return read_block<F>(in, path, header, dim, points).template cast<S>();
}

inline std::ifstream open_for_reading(const std::string& path, std::uintmax_t& file_bytes) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) read_fail(path, "is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) read_fail(path, "cannot open file");
  in.seekg(0, std::ios::end);
  const auto end = in.tellg();
  in.seekg(0, std::ios::beg);
  if (end < 0 || !in) read_fail(path, "cannot determine the file size");
  file_bytes = static_cast<std::uintmax_t>(end);
  return in;
}

inline std::atomic<std::uint64_t> temp_file_counter{0};

// Removes the temporary file unless the write was committed by the rename.
class TempFile {
 public:
  TempFile(const std::string& target, const char* function) {
    const auto salt = static_cast<std::uint64_t>(std::hash<std::thread::id>{}(std::this_thread::get_id())) ^
                      static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    for (int attempt = 0; attempt < 100; ++attempt) {
      std::ostringstream name;
      name << target << ".tmp-" << std::hex << (salt + temp_file_counter.fetch_add(1));
      name_ = name.str();
      // "x": never clobber a file that happens to have the same name.
      file_ = std::fopen(name_.c_str(), "wbx");
      if (file_ != nullptr) return;
      if (errno != EEXIST) break;
    }
    const std::string reason = std::generic_category().message(errno);
    dqs::detail::fail(function, "(\"", target, "\"): cannot create a temporary file beside it (", reason,
                      ")");
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (file_ != nullptr) std::fclose(file_);
    if (!committed_) {
      std::error_code ignored;
      std::filesystem::remove(name_, ignored);
    }
  }

  bool write(const void* data, std::size_t bytes) {
    return bytes == 0 || std::fwrite(data, 1, bytes, file_) == bytes;
  }

  void commit(const std::string& target, const char* function) {
    const bool flushed = std::fflush(file_) == 0 && std::ferror(file_) == 0;
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    if (!flushed || !closed)
      throw std::runtime_error("dqs: " + std::string(function) + "(\"" + target + "\"): writing " + name_ +
                               " failed");
    std::error_code error;
    std::filesystem::rename(name_, target, error);
    if (error)
      throw std::runtime_error("dqs: " + std::string(function) + "(\"" + target + "\"): cannot rename " +
                               name_ + " onto it (" + error.message() + ")");
    committed_ = true;
  }

 private:
  std::string name_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

// Writes `data` (column-major, possibly with an outer stride) as the array `shape` of its scalar type.
template <Real S>
void write_array(const std::string& path, const char* function, const Eigen::Ref<const Matrix<S>>& data,
                 const std::vector<std::size_t>& shape) {
  std::ostringstream header;
  xt::detail::write_header(header, xt::detail::build_typestring<S>(), false, shape);
  const std::string header_bytes = header.str();

  TempFile temp(path, function);
  bool ok = temp.write(header_bytes.data(), header_bytes.size());
  if (data.outerStride() == data.rows() || data.cols() <= 1) {
    ok = ok && temp.write(data.data(), sizeof(S) * static_cast<std::size_t>(data.size()));
  } else {
    for (Index j = 0; ok && j < data.cols(); ++j)
      ok = temp.write(data.col(j).data(), sizeof(S) * static_cast<std::size_t>(data.rows()));
  }
  if (!ok)
    throw std::runtime_error("dqs: " + std::string(function) + "(\"" + path + "\"): writing the data failed");
  temp.commit(path, function);
}

}  // namespace detail

// Reads a 2-D (N, D) float32/float64 array (C or Fortran order) as a D×N batch of S; a 1-D (N,)
// array reads as 1×N. Anything else throws std::invalid_argument naming the path and the problem.
template <Real S>
Matrix<S> read_npy(const std::string& path) {
  std::uintmax_t file_bytes = 0;
  std::ifstream in = detail::open_for_reading(path, file_bytes);
  const detail::NpyHeader header = detail::read_npy_header(in, path, file_bytes);
  if (header.word_size == 4) return detail::read_as<S, float>(in, path, header);
  return detail::read_as<S, double>(in, path, header);
}

// Reads a 1-D (N,) float32/float64 array as N values of S.
template <Real S>
Vector<S> read_npy_values(const std::string& path) {
  std::uintmax_t file_bytes = 0;
  std::ifstream in = detail::open_for_reading(path, file_bytes);
  const detail::NpyHeader header = detail::read_npy_header(in, path, file_bytes);
  if (header.shape.size() != 1)
    detail::read_fail(path,
                      "expected a 1-D array of values, got ndim " + std::to_string(header.shape.size()));
  const Matrix<S> row = header.word_size == 4 ? detail::read_as<S, float>(in, path, header)
                                              : detail::read_as<S, double>(in, path, header);
  return row.transpose();
}

// Writes the D×N batch as an (N, D) C-order array of its scalar type, atomically: the bytes go to
// a temporary file in the same directory, which is then renamed onto `path`.
template <class Derived>
void write_npy(const std::string& path, const Eigen::MatrixBase<Derived>& batch) {
  using S = typename Derived::Scalar;
  static_assert(Real<S>, "dqs::io::write_npy writes float or double batches");
  const Eigen::Ref<const Matrix<S>> data(batch.derived());
  detail::write_array<S>(path, "write_npy", data,
                         {static_cast<std::size_t>(data.cols()), static_cast<std::size_t>(data.rows())});
}

// Writes a vector (row or column) as a 1-D (N,) array of its scalar type, atomically.
template <class Derived>
void write_npy_values(const std::string& path, const Eigen::MatrixBase<Derived>& values) {
  using S = typename Derived::Scalar;
  static_assert(Real<S>, "dqs::io::write_npy_values writes float or double values");
  dqs::detail::require(values.rows() == 1 || values.cols() == 1, "write_npy_values(\"", path,
                       "\"): values must be a vector, got ", values.rows(), "x", values.cols());
  const Eigen::Ref<const Matrix<S>> data(values.derived());
  detail::write_array<S>(path, "write_npy_values", data, {static_cast<std::size_t>(data.size())});
}

}  // namespace dqs::io
