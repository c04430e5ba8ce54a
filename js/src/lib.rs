//! keygate for JavaScript (filled in by the npm-module issue).
