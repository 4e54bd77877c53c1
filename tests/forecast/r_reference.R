# Reference fits with R's forecast package, for compare_with_r.py.
# usage: Rscript r_reference.R SERIES.csv OUT.json FREQ HORIZON MODELS ARIMA_IDS
#   SERIES.csv: one series per line, "id,v1,v2,..."; MODELS: comma list of
#   ETS codes (e.g. ANN,AAdA,MNM) fitted besides the automatic ets();
#   ARIMA_IDS: comma list of ids also fitted with auto.arima ("-" for none).
suppressPackageStartupMessages(library(forecast))
args <- commandArgs(trailingOnly = TRUE)
lines <- readLines(args[1])
out_path <- args[2]
freq <- as.integer(args[3])
h <- as.integer(args[4])
models <- strsplit(args[5], ",")[[1]]
arima_ids <- strsplit(args[6], ",")[[1]]

num <- function(x) {
  x <- as.numeric(x)
  paste0("[", paste(ifelse(is.finite(x), sprintf("%.17g", x), "null"), collapse = ","), "]")
}
ets_record <- function(fit, secs, label) {
  fc <- forecast(fit, h = h, PI = FALSE)$mean
  comps <- fit$components
  code <- paste0(comps[1], comps[2], ifelse(comps[4] == "TRUE", "d", ""), comps[3])
  par <- fit$par
  sprintf(paste0('{"label":"%s","code":"%s","method":"%s","alpha":%s,"beta":%s,',
                 '"gamma":%s,"phi":%s,"loglik":%.17g,"aicc":%.17g,"init":%s,',
                 '"final":%s,"mean":%s,"seconds":%.6f}'),
          label, code, fit$method,
          num(par["alpha"]), num(ifelse(is.na(par["beta"]), NA, par["beta"])),
          num(ifelse(is.na(par["gamma"]), NA, par["gamma"])),
          num(ifelse(is.na(par["phi"]), NA, par["phi"])),
          fit$loglik, fit$aicc, num(fit$states[1, ]),
          num(fit$states[nrow(fit$states), ]), num(fc), secs)
}
records <- c()
for (line in lines) {
  f <- strsplit(line, ",")[[1]]
  id <- f[1]
  y <- ts(as.numeric(f[-1]), frequency = freq)
  fits <- c()
  t0 <- proc.time()[["elapsed"]]
  fit <- tryCatch(ets(y), error = function(e) NULL)
  secs <- proc.time()[["elapsed"]] - t0
  if (!is.null(fit)) fits <- c(fits, ets_record(fit, secs, "auto"))
  for (code in models) {
    damped <- nchar(code) == 4
    spec <- gsub("d", "", code)
    t0 <- proc.time()[["elapsed"]]
    fit <- tryCatch(ets(y, model = spec, damped = damped), error = function(e) NULL)
    secs <- proc.time()[["elapsed"]] - t0
    if (!is.null(fit)) fits <- c(fits, ets_record(fit, secs, code))
  }
  arima <- "null"
  if (id %in% arima_ids) {
    t0 <- proc.time()[["elapsed"]]
    fit <- tryCatch(auto.arima(y), error = function(e) NULL)
    secs <- proc.time()[["elapsed"]] - t0
    if (!is.null(fit)) {
      constant <- any(names(coef(fit)) %in% c("drift", "intercept"))
      arima <- sprintf(paste0('{"method":"%s","order":%s,"constant":%s,"loglik":%.17g,',
                              '"aicc":%.17g,"mean":%s,"seconds":%.6f}'),
                       gsub('"', "", as.character(fit)), num(arimaorder(fit)[1:6]),
                       ifelse(constant, "true", "false"), fit$loglik, fit$aicc,
                       num(forecast(fit, h = h)$mean), secs)
    }
  }
  records <- c(records, sprintf('"%s":{"ets":[%s],"arima":%s}', id,
                                paste(fits, collapse = ","), arima))
}
writeLines(paste0("{", paste(records, collapse = ",\n"), "}"), out_path)
