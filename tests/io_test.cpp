// Tests for dqs::io: .npy round trips, files laid out by hand as numpy writes them (C and Fortran
// order, both byte orders, long headers), the shared numpy-written reference data, and rejection
// of every malformed file with a message naming the path.
#include "dqs/io/io.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "dqs/random/philox.hpp"

namespace {

namespace fs = std::filesystem;

// A fresh directory per test case and process (ctest runs test cases in parallel processes).
struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& name)
      : path(fs::temp_directory_path() / ("dqs_io_test_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path)) names.push_back(entry.path().filename().string());
    return names;
  }
};

template <class S>
dqs::Matrix<S> normal_batch(dqs::Index dim, dqs::Index points, std::uint64_t seed) {
  dqs::Matrix<S> batch(dim, points);
  dqs::random::fill_normal<S>(dqs::random::StreamKey{.seed = seed}, batch);
  return batch;
}

// Lays out a .npy file the way numpy's format module does: magic, version, little-endian header
// length, the dict literal padded with spaces to a multiple of 64 bytes and ended by '\n', data.
std::string npy_bytes(const std::string& dict, const std::string& data, int major = 1,
                      std::size_t min_header = 0) {
  const std::size_t prefix = major == 1 ? 10 : 12;
  std::string header = dict;
  std::size_t total = prefix + header.size() + 1;
  std::size_t padded = (total + 63) / 64 * 64;
  while (padded - prefix < min_header) padded += 64;
  header.append(padded - total, ' ');
  header.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back(static_cast<char>(major));
  out.push_back('\0');
  const auto length = static_cast<std::uint32_t>(header.size());
  for (std::size_t b = 0; b < prefix - 8; ++b) out.push_back(static_cast<char>((length >> (8 * b)) & 0xff));
  return out + header + data;
}

template <class T>
std::string raw_bytes(const std::vector<T>& values, bool big_endian = false) {
  std::string out(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  if (big_endian)
    for (std::size_t i = 0; i < values.size(); ++i)
      std::reverse(out.begin() + i * sizeof(T), out.begin() + (i + 1) * sizeof(T));
  return out;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The message must name the path and the problem.
template <class Function>
void require_rejects(Function&& function, const std::string& path, const std::string& problem) {
  try {
    function();
    FAIL("no exception for " << path << " (expected: " << problem << ")");
  } catch (const std::invalid_argument& error) {
    const std::string message = error.what();
    INFO(message);
    CHECK(message.rfind("dqs: ", 0) == 0);
    CHECK(message.find(path) != std::string::npos);
    CHECK(message.find(problem) != std::string::npos);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("npy round trip is exact and lays the batch out as (N, D) C order", "[io]", float,
                   double) {
  using S = TestType;
  ScratchDir dir("roundtrip");
  const dqs::Matrix<S> batch = normal_batch<S>(5, 37, 11);
  const std::string path = dir.file("batch.npy");
  dqs::io::write_npy(path, batch);

  const dqs::Matrix<S> back = dqs::io::read_npy<S>(path);
  REQUIRE(back.rows() == 5);
  REQUIRE(back.cols() == 37);
  CHECK(back == batch);

  // The other scalar type reads as the cast of the stored values.
  using Other = std::conditional_t<std::is_same_v<S, float>, double, float>;
  const dqs::Matrix<Other> converted = dqs::io::read_npy<Other>(path);
  CHECK(converted == batch.template cast<Other>());

  // The bytes on disk are numpy's: a 64-byte-aligned v1.0 header declaring (N, D) in C order,
  // then the column-major batch verbatim.
  const std::string bytes = read_file(path);
  REQUIRE(bytes.size() == 128 + sizeof(S) * 5 * 37);
  CHECK(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  const std::string header = bytes.substr(10, 118);
  const std::string descr = std::is_same_v<S, float> ? "'<f4'" : "'<f8'";
  CHECK(header.find("'descr': " + descr) != std::string::npos);
  CHECK(header.find("'fortran_order': False") != std::string::npos);
  CHECK(header.find("'shape': (37, 5)") != std::string::npos);
  CHECK(header.back() == '\n');
  CHECK(std::memcmp(bytes.data() + 128, batch.data(), sizeof(S) * 5 * 37) == 0);
}

TEMPLATE_TEST_CASE("npy writes blocks, row-major matrices and expressions by value", "[io]", float, double) {
  using S = TestType;
  ScratchDir dir("blocks");
  const dqs::Matrix<S> batch = normal_batch<S>(6, 20, 12);

  const auto block = batch.block(1, 3, 4, 9);  // strided: outer stride 6, 4 rows
  dqs::io::write_npy(dir.file("block.npy"), block);
  CHECK(dqs::io::read_npy<S>(dir.file("block.npy")) == dqs::Matrix<S>(block));

  const Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> row_major = batch;
  dqs::io::write_npy(dir.file("row_major.npy"), row_major);
  CHECK(dqs::io::read_npy<S>(dir.file("row_major.npy")) == batch);

  dqs::io::write_npy(dir.file("expr.npy"), S(2) * batch);
  CHECK(dqs::io::read_npy<S>(dir.file("expr.npy")) == dqs::Matrix<S>(S(2) * batch));

  // Values: a column vector and a strided row both write 1-D (N,) arrays.
  const dqs::Vector<S> values = batch.col(4);
  dqs::io::write_npy_values(dir.file("values.npy"), values);
  CHECK(dqs::io::read_npy_values<S>(dir.file("values.npy")) == values);
  CHECK(read_file(dir.file("values.npy")).find("'shape': (6,)") != std::string::npos);
  dqs::io::write_npy_values(dir.file("row.npy"), batch.row(2));
  CHECK(dqs::io::read_npy_values<S>(dir.file("row.npy")) == dqs::Vector<S>(batch.row(2).transpose()));
  // A 1-D array read as a batch is 1×N.
  const dqs::Matrix<S> as_batch = dqs::io::read_npy<S>(dir.file("row.npy"));
  CHECK(as_batch.rows() == 1);
  CHECK(as_batch == dqs::Matrix<S>(batch.row(2)));

  // Empty batches survive too.
  dqs::io::write_npy(dir.file("empty.npy"), dqs::Matrix<S>(3, 0));
  const dqs::Matrix<S> empty = dqs::io::read_npy<S>(dir.file("empty.npy"));
  CHECK(empty.rows() == 3);
  CHECK(empty.cols() == 0);
}

TEST_CASE("npy reads files laid out by hand as numpy writes them", "[io]") {
  ScratchDir dir("by_hand");
  // The (3, 2) array [[1, 2], [3, 4], [5, 6]] holds points (1,2), (3,4), (5,6).
  dqs::Matrix<double> expected(2, 3);
  expected << 1, 3, 5, 2, 4, 6;

  SECTION("C order float64") {
    const std::string path = dir.file("c.npy");
    write_file(path, npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }",
                               raw_bytes(std::vector<double>{1, 2, 3, 4, 5, 6})));
    CHECK(dqs::io::read_npy<double>(path) == expected);
  }
  SECTION("Fortran order float32: the same array, stored column by column") {
    const std::string path = dir.file("f.npy");
    write_file(path, npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }",
                               raw_bytes(std::vector<float>{1, 3, 5, 2, 4, 6})));
    CHECK(dqs::io::read_npy<double>(path) == expected);
    CHECK(dqs::io::read_npy<float>(path) == expected.cast<float>());
  }
  SECTION("Fortran order float64, non-square and with fractional values") {
    const std::string path = dir.file("f64.npy");
    // (2, 3) array [[0.5, -1.25, 3], [7, 0.125, -2]] in Fortran order.
    write_file(path, npy_bytes("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
                               raw_bytes(std::vector<double>{0.5, 7, -1.25, 0.125, 3, -2})));
    dqs::Matrix<double> want(3, 2);
    want << 0.5, 7, -1.25, 0.125, 3, -2;
    CHECK(dqs::io::read_npy<double>(path) == want);
  }
  SECTION("big-endian float64") {
    const std::string path = dir.file("be.npy");
    write_file(path, npy_bytes("{'descr': '>f8', 'fortran_order': False, 'shape': (3, 2), }",
                               raw_bytes(std::vector<double>{1, 2, 3, 4, 5, 6}, true)));
    CHECK(dqs::io::read_npy<double>(path) == expected);
  }
  SECTION("header length with a byte >= 0x80 (182 bytes) and format version 2.0") {
    const std::string path = dir.file("long.npy");
    const std::string bytes = npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }",
                                        raw_bytes(std::vector<double>{1, 2, 3, 4, 5, 6}), 1, 150);
    REQUIRE(static_cast<unsigned char>(bytes[8]) == 182);
    write_file(path, bytes);
    CHECK(dqs::io::read_npy<double>(path) == expected);
    const std::string path2 = dir.file("v2.npy");
    write_file(path2, npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }",
                                raw_bytes(std::vector<double>{1, 2, 3, 4, 5, 6}), 2));
    CHECK(dqs::io::read_npy<double>(path2) == expected);
  }
  SECTION("keys in another order, no trailing comma") {
    const std::string path = dir.file("order.npy");
    write_file(path, npy_bytes("{'shape': (3, 2), 'fortran_order': False, 'descr': '<f8'}",
                               raw_bytes(std::vector<double>{1, 2, 3, 4, 5, 6})));
    CHECK(dqs::io::read_npy<double>(path) == expected);
  }
  SECTION("1-D float32") {
    const std::string path = dir.file("v.npy");
    write_file(path, npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
                               raw_bytes(std::vector<float>{1.5f, -2, 0, 8})));
    const dqs::Vector<double> values = dqs::io::read_npy_values<double>(path);
    REQUIRE(values.size() == 4);
    CHECK(values(0) == 1.5);
    CHECK(values(1) == -2);
    CHECK(values(3) == 8);
    CHECK(dqs::io::read_npy<float>(path).rows() == 1);
  }
}

TEST_CASE("npy reads numpy's dw4_test.npy as numpy sees it", "[io]") {
  const std::string path = std::string(DQS_SHARED_DIR) + "/data/dw4_test.npy";
  const dqs::Matrix<float> batch = dqs::io::read_npy<float>(path);
  REQUIRE(batch.rows() == 8);
  REQUIRE(batch.cols() == 10000);
  // Literals printed by numpy 1.24 (/usr/bin/python3: float(np.load(path)[i, j]).hex()); point i
  // is column i, coordinate j is row j.
  CHECK(batch(0, 0) == 0x1.ccc748p+0f);
  CHECK(batch(7, 0) == -0x1.1b5d1ep+3f);
  CHECK(batch(5, 1234) == -0x1.2a97aap+2f);
  CHECK(batch(0, 9999) == -0x1.4f6312p+2f);
  CHECK(batch(7, 9999) == -0x1.38137ap+0f);
  // numpy: a.astype(np.float64).sum() = -26421.102034701034 (pairwise summation; ours differs in
  // order only, so agreement to ~1e-12 relative is expected, 1e-9 allowed).
  const dqs::Matrix<double> as_double = dqs::io::read_npy<double>(path);
  CHECK(as_double.sum() == Approx(-26421.102034701034).epsilon(1e-9));
  CHECK(as_double == batch.cast<double>());
}

TEST_CASE("npy rejects malformed files with a message naming the path", "[io]") {
  ScratchDir dir("reject");
  const std::string good = npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }",
                                     raw_bytes(std::vector<double>{1, 2, 3, 4, 5, 6}));
  auto read = [](const std::string& path) { return [path] { (void)dqs::io::read_npy<double>(path); }; };

  const std::string missing = dir.file("missing.npy");
  require_rejects(read(missing), missing, "cannot open");
  require_rejects(read(dir.path.string()), dir.path.string(), "is a directory");

  const std::string truncated = dir.file("truncated.npy");
  write_file(truncated, good.substr(0, good.size() - 4));
  require_rejects(read(truncated), truncated, "truncated data");

  const std::string trailing = dir.file("trailing.npy");
  write_file(trailing, good + "xyz");
  require_rejects(read(trailing), trailing, "unexpected bytes");

  const std::string short_header = dir.file("short_header.npy");
  write_file(short_header, good.substr(0, 60));
  require_rejects(read(short_header), short_header, "truncated .npy header");

  const std::string magic = dir.file("magic.npy");
  write_file(magic, "\x93NUMPZ" + good.substr(6));
  require_rejects(read(magic), magic, "bad magic");
  const std::string tiny = dir.file("tiny.npy");
  write_file(tiny, "\x93NU");
  require_rejects(read(tiny), tiny, "bad magic");

  const std::string int64 = dir.file("int64.npy");
  write_file(int64, npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (3, 2), }",
                              raw_bytes(std::vector<std::int64_t>{1, 2, 3, 4, 5, 6})));
  require_rejects(read(int64), int64, "dtype '<i8' is not float32/float64");
  CHECK_THROWS_WITH(read(int64)(), "dqs: read_npy(\"" + int64 + "\"): dtype '<i8' is not float32/float64");

  const std::string half = dir.file("half.npy");
  write_file(half,
             npy_bytes("{'descr': '<f2', 'fortran_order': False, 'shape': (3, 2), }", std::string(12, '\0')));
  require_rejects(read(half), half, "dtype '<f2' is not float32/float64");

  const std::string three_d = dir.file("three_d.npy");
  write_file(three_d, npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 3, 2), }",
                                raw_bytes(std::vector<double>{1, 2, 3, 4, 5, 6})));
  require_rejects(read(three_d), three_d, "ndim 3 is not 1 or 2");

  const std::string scalar = dir.file("scalar.npy");
  write_file(scalar, npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
                               raw_bytes(std::vector<double>{1})));
  require_rejects(read(scalar), scalar, "ndim 0 is not 1 or 2");

  const std::string bad_shape = dir.file("bad_shape.npy");
  write_file(bad_shape, npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (x, 2), }",
                                  raw_bytes(std::vector<double>{1, 2, 3, 4, 5, 6})));
  require_rejects(read(bad_shape), bad_shape, "shape entries must be non-negative integers");

  const std::string no_shape = dir.file("no_shape.npy");
  write_file(no_shape,
             npy_bytes("{'descr': '<f8', 'fortran_order': False}", raw_bytes(std::vector<double>{1})));
  require_rejects(read(no_shape), no_shape, "missing 'descr', 'fortran_order' or 'shape'");

  const std::string extra_key = dir.file("extra_key.npy");
  write_file(extra_key, npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 1}",
                                  raw_bytes(std::vector<double>{1})));
  require_rejects(read(extra_key), extra_key, "unexpected key 'x'");

  // A shape whose byte count overflows must not be trusted (nor allocated).
  const std::string huge = dir.file("huge.npy");
  write_file(huge, npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
                             raw_bytes(std::vector<double>{1})));
  require_rejects(read(huge), huge, "too large");

  const std::string two_d = dir.file("two_d.npy");
  write_file(two_d, good);
  require_rejects([&] { (void)dqs::io::read_npy_values<double>(two_d); }, two_d, "expected a 1-D array");
}

TEST_CASE("npy writes are atomic and leave no temporary file behind", "[io]") {
  ScratchDir dir("atomic");
  const dqs::Matrix<double> first = normal_batch<double>(3, 10, 21);
  const dqs::Matrix<double> second = normal_batch<double>(4, 7, 22);
  const std::string path = dir.file("out.npy");

  dqs::io::write_npy(path, first);
  CHECK(dir.entries() == std::vector<std::string>{"out.npy"});
  dqs::io::write_npy(path, second);  // replaces the old file whole
  CHECK(dir.entries() == std::vector<std::string>{"out.npy"});
  CHECK(dqs::io::read_npy<double>(path) == second);

  // Nowhere to put the temporary file: invalid_argument naming the path, nothing created.
  const std::string nowhere = dir.file("no_such_dir/out.npy");
  require_rejects([&] { dqs::io::write_npy(nowhere, first); }, nowhere, "cannot create a temporary file");

  // The target is a directory: the rename fails, the temporary file is removed, the directory stays.
  fs::create_directory(dir.path / "taken");
  const std::string taken = dir.file("taken");
  try {
    dqs::io::write_npy(taken, first);
    FAIL("writing onto a directory did not throw");
  } catch (const std::runtime_error& error) {
    CHECK(std::string(error.what()).find(taken) != std::string::npos);
  }
  std::vector<std::string> names = dir.entries();
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"out.npy", "taken"});
  CHECK(fs::is_directory(dir.path / "taken"));

  require_rejects([&] { dqs::io::write_npy_values(dir.file("v.npy"), first); }, dir.file("v.npy"),
                  "must be a vector");
}
