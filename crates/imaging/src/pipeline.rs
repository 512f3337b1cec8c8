//! Parsing and running filter pipelines such as `blur=5,resize=800x,grayscale`.
