#include "train/model_setup.h"

#include <c10/util/Exception.h>

#include <filesystem>

namespace mft::train {

std::string resolve_tokenizer_path(const std::string& model_spec, const std::string& tokenizer_path) {
  namespace fs = std::filesystem;
  if (!tokenizer_path.empty()) return tokenizer_path;
  const bool preset = model_spec.rfind("preset:", 0) == 0;
  if (!preset && fs::exists(fs::path(model_spec) / "tokenizer.json")) {
    return (fs::path(model_spec) / "tokenizer.json").string();
  }
  if (preset && model_spec.find("-tiny") != std::string::npos) return "bytes";
  TORCH_CHECK(false, "model ", model_spec,
              " has no tokenizer.json: pass a tokenizer (--tokenizer PATH, "
              "model.tokenizer in a recipe, or 'bytes')");
}

std::unique_ptr<Tokenizer> load_tokenizer_for(const std::string& model_spec, const std::string& tokenizer_path) {
  const std::string path = resolve_tokenizer_path(model_spec, tokenizer_path);
  return path == "bytes" ? make_byte_tokenizer() : load_tokenizer(path);
}

}  // namespace mft::train
