#include "server/codebook_artifacts.h"

#include <string>

#include "absl/strings/str_format.h"
#include "core/codebook.h"

namespace kvplan::server {
namespace {

v1::GetCodebookResponse ToResponse(const Codebook& book) {
  v1::GetCodebookResponse response;
  response.set_bits(book.bits);
  response.set_centroids(CodebookCentroidBytes(book.centroids));
  response.set_content_hash(book.content_hash);
  return response;
}

}  // namespace

absl::StatusOr<v1::GetCodebookResponse> GetCodebook(const v1::GetCodebookRequest& request) {
  switch (request.selector_case()) {
    case v1::GetCodebookRequest::kBits:
      // LloydMaxCodebook clamps; a caller asking for 9 bits wants to hear no.
      if (request.bits() < kMinCodeBits || request.bits() > kMaxCodeBits) {
        return absl::InvalidArgumentError(
            absl::StrFormat("codebook width %d bits is outside [%d, %d]; plans use only those",
                            request.bits(), kMinCodeBits, kMaxCodeBits));
      }
      return ToResponse(LloydMaxCodebook(request.bits()));
    case v1::GetCodebookRequest::kContentHash:
      for (int bits = kMinCodeBits; bits <= kMaxCodeBits; ++bits) {
        const Codebook& book = LloydMaxCodebook(bits);
        if (book.content_hash == request.content_hash()) return ToResponse(book);
      }
      return absl::NotFoundError(absl::StrFormat(
          "no codebook of this coordinator's build has content hash '%s' (a plan from a build "
          "with other tables?)",
          request.content_hash()));
    default:
      return absl::InvalidArgumentError("GetCodebook needs bits or a content_hash");
  }
}

}  // namespace kvplan::server
