# Reference fits with R's forecast package, for compare_with_r.py.
# usage: Rscript r_reference.R SERIES.csv OUT.json FREQ HORIZON MODELS ARIMA_IDS [arima-only]
#   SERIES.csv: one series per line, "id,v1,v2,..."; MODELS: comma list of
#   ETS codes (e.g. ANN,AAdA,MNM) fitted besides the automatic ets();
#   ARIMA_IDS: comma list of ids also fitted with auto.arima ("-" for none,
#   "all" for every series); arima-only: no ets() fits at all.
suppressPackageStartupMessages(library(forecast))
args <- commandArgs(trailingOnly = TRUE)
lines <- readLines(args[1])
out_path <- args[2]
freq <- as.integer(args[3])
h <- as.integer(args[4])
models <- if (args[5] == "-") character(0) else strsplit(args[5], ",")[[1]]
arima_ids <- strsplit(args[6], ",")[[1]]
ets_fits <- length(args) < 7 || args[7] != "arima-only"

num <- function(x) {
  x <- as.numeric(x)
  paste0("[", paste(ifelse(is.finite(x), sprintf("%.17g", x), "null"), collapse = ","), "]")
}
ets_record <- function(fit, secs, label) {
  comps <- fit$components
  fc <- forecast(fit, h = h, PI = FALSE)$mean
  # Deterministic recursion forecast (R's etsforecast, used on the simulate path);
  # for M-season models forecast.ets's default mean is an analytic class-3 mean.
  fc_det <- forecast(fit, h = h, simulate = TRUE, npaths = 2)$mean
  # Textbook recursion forecast from R's final state: (l + (phi + ... + phi^k) b) (+|*) s.
  # (R's etsforecast accumulates phi + phi + ... + phi^(k-1) for damped trends.)
  st <- fit$states[nrow(fit$states), ]
  phi <- if (comps[4] == "TRUE") fit$par["phi"] else 1
  b <- if (comps[2] == "N") 0 else st[2]
  m <- fit$m
  ns <- length(st)
  fc_tb <- sapply(1:h, function(k) {
    f <- st[1] + sum(phi^(1:k)) * b
    if (comps[3] == "A") f <- f + st[ns - ((k - 1) %% m)]
    if (comps[3] == "M") f <- f * st[ns - ((k - 1) %% m)]
    f
  })
  code <- paste0(comps[1], comps[2], ifelse(comps[4] == "TRUE", "d", ""), comps[3])
  par <- fit$par
  sprintf(paste0('{"label":"%s","code":"%s","method":"%s","alpha":%s,"beta":%s,',
                 '"gamma":%s,"phi":%s,"loglik":%.17g,"aicc":%.17g,"init":%s,',
                 '"final":%s,"mean":%s,"mean_det":%s,"mean_textbook":%s,"seconds":%.6f}'),
          label, code, fit$method,
          num(par["alpha"]), num(ifelse(is.na(par["beta"]), NA, par["beta"])),
          num(ifelse(is.na(par["gamma"]), NA, par["gamma"])),
          num(ifelse(is.na(par["phi"]), NA, par["phi"])),
          fit$loglik, fit$aicc, num(fit$states[1, ]),
          num(fit$states[nrow(fit$states), ]), num(fc), num(fc_det), num(fc_tb), secs)
}
records <- c()
for (line in lines) {
  f <- strsplit(line, ",")[[1]]
  id <- f[1]
  y <- ts(as.numeric(f[-1]), frequency = freq)
  fits <- c()
  t0 <- proc.time()[["elapsed"]]
  fit <- if (ets_fits) tryCatch(ets(y), error = function(e) NULL) else NULL
  secs <- proc.time()[["elapsed"]] - t0
  if (!is.null(fit)) fits <- c(fits, ets_record(fit, secs, "auto"))
  for (code in if (ets_fits) models else character(0)) {
    damped <- nchar(code) == 4
    spec <- gsub("d", "", code)
    t0 <- proc.time()[["elapsed"]]
    fit <- tryCatch(ets(y, model = spec, damped = damped), error = function(e) NULL)
    secs <- proc.time()[["elapsed"]] - t0
    if (!is.null(fit)) fits <- c(fits, ets_record(fit, secs, code))
  }
  arima <- "null"
  if (id %in% arima_ids || identical(arima_ids, "all")) {
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
  record <- sprintf('"%s":{"ets":[%s],"arima":%s}', id, paste(fits, collapse = ","), arima)
  records <- c(records, record)
  # Progress, one record per line: usable if a long run is interrupted.
  cat(record, "\n", file = paste0(out_path, ".partial"), append = TRUE, sep = "")
}
writeLines(paste0("{", paste(records, collapse = ",\n"), "}"), out_path)
