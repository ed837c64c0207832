#include "trainer/data/dataset.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "trainer/data/data_metrics.h"
#include "trainer/data/idx_dataset.h"

namespace tandem::trainer::data {

absl::StatusOr<std::shared_ptr<const Dataset>> LoadDataset(const SourceConfig& source,
                                                           const LoadOptions& options) {
  absl::StatusOr<std::shared_ptr<const Dataset>> ds;
  switch (source.format) {
    case DataFormat::kIdx:
      ds = IdxDataset::Load(source.images, source.labels, source.limit);
      break;
    case DataFormat::kLibsvm:
    case DataFormat::kTokens:
      return absl::UnimplementedError(
          absl::StrCat("format ", DataFormatName(source.format), " is not implemented yet"));
  }
  if (!ds.ok()) return ds.status();
  const DataMetrics& m = DataMetrics::For(options.name);
  m.bytes_read->Inc(static_cast<double>((*ds)->bytes_read()));
  m.malformed_skipped->Inc(static_cast<double>((*ds)->malformed_skipped()));
  return ds;
}

}  // namespace tandem::trainer::data
