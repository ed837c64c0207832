#include "trainer/data/idx_dataset.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "trainer/data/decoded_cache.h"

namespace tandem::trainer::data {
namespace {

uint32_t BigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

}  // namespace

absl::StatusOr<IdxArray> ParseIdx(std::shared_ptr<const SharedBytes> storage, const std::string& path,
                                  int expected_rank) {
  const std::string_view bytes = storage->view();
  if (bytes.size() < 4) {
    return absl::DataLossError(absl::StrCat(path, ": not an IDX file: only ", bytes.size(),
                                            " bytes, shorter than the 4-byte magic number"));
  }
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  const uint32_t magic = BigEndian32(bytes.data());
  if (u[0] != 0 || u[1] != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not an IDX file: bad magic number 0x", absl::Hex(magic, absl::kZeroPad8),
        " (expected 0x0000080", expected_rank, ")"));
  }
  if (u[2] != 0x08) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": unsupported IDX element type 0x", absl::Hex(u[2], absl::kZeroPad2),
                     " (only 0x08, unsigned byte, is supported)"));
  }
  const int rank = u[3];
  if (rank != expected_rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": IDX file has ", rank, " dimensions, expected ", expected_rank, " (magic 0x",
        absl::Hex(magic, absl::kZeroPad8), ", expected 0x0000080", expected_rank, ")"));
  }
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  if (bytes.size() < header) {
    return absl::DataLossError(absl::StrCat(path, ": truncated IDX header: ", bytes.size(),
                                            " bytes, the header needs ", header));
  }
  IdxArray out;
  uint64_t elements = 1;
  for (int d = 0; d < rank; ++d) {
    const uint32_t dim = BigEndian32(bytes.data() + 4 + 4 * d);
    if (dim == 0 || (d == 0 && dim > (1u << 31))) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": IDX dimension ", d, " is ", dim, ", must be in [1, 2^31]"));
    }
    out.dims.push_back(dim);
    elements *= dim;
    if (elements > (uint64_t{1} << 40)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": IDX dimensions are implausibly large (over 2^40 elements)"));
    }
  }
  const uint64_t have = bytes.size() - header;
  if (have < elements) {
    return absl::DataLossError(absl::StrCat(path, ": truncated IDX file: dimensions need ",
                                            elements, " bytes of data, found ", have));
  }
  if (have > elements) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": IDX file has ", have - elements,
                                                   " unexpected trailing bytes after the data"));
  }
  out.data = bytes.substr(header);
  out.storage = std::move(storage);
  return out;
}

absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path, int expected_rank, const std::string& cache_dir,
                                     std::string* note) {
  auto file = ReadThroughDecodedCache(path, {.dir = cache_dir});
  if (!file.ok()) return file.status();
  if (note != nullptr) *note = file->note;
  auto parsed = ParseIdx(std::move(file->bytes), path, expected_rank);
  if (parsed.ok()) parsed->bytes_on_disk = file->bytes_on_disk;
  return parsed;
}

absl::StatusOr<std::shared_ptr<const IdxDataset>> IdxDataset::Load(const std::string& images,
                                                                   const std::string& labels,
                                                                   int64_t limit,
                                                                   const std::string& cache_dir,
                                                                   std::vector<std::string>* notes) {
  std::string image_note, label_note;
  auto image_array = ReadIdxFile(images, 3, cache_dir, &image_note);
  if (!image_array.ok()) return image_array.status();
  auto label_array = ReadIdxFile(labels, 1, cache_dir, &label_note);
  if (!label_array.ok()) return label_array.status();
  if (notes != nullptr) {
    for (std::string* n : {&image_note, &label_note})
      if (!n->empty()) notes->push_back(std::move(*n));
  }
  const int64_t n_images = image_array->dims[0];
  const int64_t n_labels = label_array->dims[0];
  if (n_images != n_labels) {
    return absl::InvalidArgumentError(absl::StrCat("image/label count mismatch: ", images, " has ",
                                                   n_images, " images but ", labels, " has ",
                                                   n_labels, " labels"));
  }
  std::shared_ptr<IdxDataset> ds(new IdxDataset());
  ds->images_path_ = images;
  ds->labels_path_ = labels;
  ds->count_ = limit > 0 ? std::min(limit, n_images) : n_images;
  ds->example_bytes_ = image_array->dims[1] * image_array->dims[2];
  // The class count comes from every label, so that `limit` does not change the model's shape.
  int max_label = 0;
  for (char c : label_array->data) max_label = std::max<int>(max_label, static_cast<uint8_t>(c));
  ds->pixels_ = image_array->data.substr(0, static_cast<size_t>(ds->count_ * ds->example_bytes_));
  ds->labels_ = label_array->data.substr(0, static_cast<size_t>(ds->count_));
  ds->pixel_storage_ = std::move(image_array->storage);
  ds->label_storage_ = std::move(label_array->storage);
  ds->layout_.feature_shape = {1, image_array->dims[1], image_array->dims[2]};
  ds->layout_.has_labels = true;
  ds->layout_.num_classes = max_label + 1;
  ds->bytes_read_ = image_array->bytes_on_disk + label_array->bytes_on_disk;
  return std::shared_ptr<const IdxDataset>(std::move(ds));
}

const uint8_t* IdxDataset::pixels(int64_t i) const {
  return reinterpret_cast<const uint8_t*>(pixels_.data()) + i * example_bytes_;
}

void IdxDataset::Append(int64_t i, Batch* batch) const {
  TANDEM_DCHECK(i >= 0 && i < count_);
  TANDEM_DCHECK(batch->size < batch->capacity);
  const size_t row = static_cast<size_t>(batch->size);
  const uint8_t* src = pixels(i);
  float* dst = batch->features.data() + row * static_cast<size_t>(example_bytes_);
  // Pixels to [0, 1]; a division rather than a 256-entry table so that the loop vectorises.
  for (int64_t k = 0; k < example_bytes_; ++k) dst[k] = static_cast<float>(src[k]) / 255.0f;
  batch->labels[row] = label(i);
  ++batch->size;
}

std::string IdxDataset::Describe() const {
  return absl::StrCat("idx ", images_path_, " + ", labels_path_, ": ", count_, " examples of ",
                      layout_.feature_shape[1], "x", layout_.feature_shape[2], ", ",
                      layout_.num_classes, " classes");
}

}  // namespace tandem::trainer::data
