// catga/export.hpp — CATGA_EXPORT, the mark of what the libraries export.
//
// libcatga_core, libcatga_cluster and libcatga_http are compiled with
// -fvisibility=hidden and -fvisibility-inlines-hidden: a shared build exports
// only the declarations of include/catga/ that carry CATGA_EXPORT (the public
// API and the few non-template doors its templates call). Everything in src/
// stays inside its library. Programs that include these headers are
// unaffected: the attribute only keeps a symbol visible.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define CATGA_EXPORT __attribute__((visibility("default")))
#else
#define CATGA_EXPORT
#endif
