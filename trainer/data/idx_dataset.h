// IDX files (the MNIST / Fashion-MNIST format: http://yann.lecun.com/exdb/mnist/), gzip or plain.
// An image file (magic 0x00000803: unsigned bytes, 3 dimensions N x rows x cols) pairs with a label
// file (0x00000801: N unsigned bytes). Both are validated completely: magic numbers, element type,
// dimensions, truncation, trailing bytes, and image/label count mismatch, each a clear error that
// names the file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/data/dataset.h"
#include "trainer/data/file_bytes.h"

namespace tandem::trainer::data {

// One IDX file's contents. Only unsigned-byte data (type 0x08) is supported.
struct IdxArray {
  std::vector<int64_t> dims;
  std::shared_ptr<const SharedBytes> storage;  // the whole file, decompressed
  std::string_view data;                       // product(dims) bytes inside `storage`
  int64_t bytes_on_disk = 0;
};

// Reads and validates an IDX file; `expected_rank` (1 for labels, 3 for images) is checked.
// With a `cache_dir`, a gzip file is read through the decoded cache there
// (trainer/data/decoded_cache.h); `note` (if not null) gets the cache's note, if any.
absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path, int expected_rank,
                                     const std::string& cache_dir = "", std::string* note = nullptr);

// Parses IDX bytes already in memory; `path` is only used in messages.
absl::StatusOr<IdxArray> ParseIdx(std::shared_ptr<const SharedBytes> bytes, const std::string& path,
                                  int expected_rank);

// Images as float features [1, rows, cols] scaled to [0,1], labels as int32 classes.
class IdxDataset : public Dataset {
 public:
  // Loads both files; `limit` > 0 keeps only the first `limit` examples. `cache_dir` and `notes`:
  // see ReadIdxFile (each non-empty note is appended to `notes`).
  static absl::StatusOr<std::shared_ptr<const IdxDataset>> Load(const std::string& images,
                                                                const std::string& labels,
                                                                int64_t limit = 0,
                                                                const std::string& cache_dir = "",
                                                                std::vector<std::string>* notes = nullptr);

  int64_t size() const override { return count_; }
  const BatchLayout& layout() const override { return layout_; }
  void Append(int64_t i, Batch* batch) const override;
  std::string Describe() const override;

  // The raw pixel bytes of example i (rows*cols) and its label.
  const uint8_t* pixels(int64_t i) const;
  int label(int64_t i) const { return static_cast<uint8_t>(labels_[static_cast<size_t>(i)]); }

 private:
  IdxDataset() = default;

  std::string images_path_, labels_path_;
  // The decoded files (owned strings or mappings of decoded-cache entries) and views of the
  // first count_ examples in them.
  std::shared_ptr<const SharedBytes> pixel_storage_, label_storage_;
  std::string_view pixels_;
  std::string_view labels_;
  int64_t count_ = 0;
  int64_t example_bytes_ = 0;
  BatchLayout layout_;
};

}  // namespace tandem::trainer::data
