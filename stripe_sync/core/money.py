"""Currencies as Stripe knows them (docs.stripe.com/currencies).

Plain data, no Dagster: the Stripe emulator and the validation rules both read it.
"""

# Presentment currencies Stripe accepts for prices, lowercase, in the order Stripe's own
# "Invalid currency" error lists them (2024).
_STRIPE_CURRENCY_LIST = """
    usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd
    bwp byn bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp
    gel gip gmd gnf gtq gyd hkd hnl hrk htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf
    krw kwd kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn
    nad ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr
    sek sgd shp sle sos srd std szl thb tjs tnd top try ttd twd tzs uah ugx uyu uzs vnd vuv
    wst xaf xcd xof xpf yer zar zmw usdc btn ghs eek lvl svc vef ltl sll mro
"""
SUPPORTED_CURRENCIES: tuple[str, ...] = tuple(_STRIPE_CURRENCY_LIST.split())
