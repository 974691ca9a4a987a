{
  # node-gyp build of the poolkv_native addon (run by `npm install` / `npm ci`).
  # RDMA support is compiled in only when both verbs and rdmacm headers exist;
  # otherwise POOLKV_NO_RDMA is defined and capabilities() explains what to install.
  "variables": {
    "poolkv_have_rdma": "<!(test -f /usr/include/infiniband/verbs.h && test -f /usr/include/rdma/rdma_cma.h && echo 1 || echo 0)"
  },
  "targets": [
    {
      "target_name": "poolkv_native",
      "sources": ["native/poolkv_native.cc", "native/page_io.cc", "native/image_load.cc", "native/rdma.cc", "native/rdma_engine.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "conditions": [
        ["poolkv_have_rdma==1", {
          "libraries": ["-libverbs", "-lrdmacm"]
        }, {
          "defines": ["POOLKV_NO_RDMA"]
        }]
      ]
    }
  ]
}
