// The dashboard's static files (api/ui/), embedded in the binary at build time by
// api/ui/embed.cmake and served by the admin API under /ui/.
#ifndef SCUTTLE_API_UI_ASSETS_H_
#define SCUTTLE_API_UI_ASSETS_H_

#include <cstddef>
#include <span>

namespace scuttle {

struct UiAsset {
  const char* name;          // file name, e.g. "app.js"
  const char* content_type;  // HTTP Content-Type
  const unsigned char* data;
  size_t size;
};

std::span<const UiAsset> UiAssets();

}  // namespace scuttle

#endif  // SCUTTLE_API_UI_ASSETS_H_
