#pragma once
// Everything of the data library: loaders and templates, batching, the quickstart's synthetic data.
#include "data/batch.h"
#include "data/dataset.h"
#include "data/synthetic.h"
